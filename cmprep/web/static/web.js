/* The bench pages' only script (no inline script anywhere: the CSP forbids it). Every page
   works without it; with it:
   - a lot or instrument scanned with a keyboard-wedge reader (which types the code, then
     Enter) moves on to the next field instead of sending the form, and each field is
     judged as it is typed (the server's own checks, posted to the step's /check address);
   - the browser's time zone goes with a late entry's time;
   - the bench board swaps in its list when another bench writes, without a reload;
   - print buttons print; a form is not sent twice by a double tap. */
(function () {
  "use strict";

  function each(selector, fn, root) {
    Array.prototype.forEach.call((root || document).querySelectorAll(selector), fn);
  }

  // time zone of this tablet, in minutes east of UTC, for late entries
  each("input[data-tz]", function (el) {
    el.value = String(-new Date().getTimezoneOffset());
  });

  // a late entry's time is offered in UTC by the server: shown in this tablet's zone
  each("input[data-utc]", function (el) {
    if (el.value !== el.getAttribute("data-utc")) { return; }
    var moment = new Date(el.value + ":00Z");
    if (isNaN(moment.getTime())) { return; }
    function two(n) { return (n < 10 ? "0" : "") + n; }
    el.value = moment.getFullYear() + "-" + two(moment.getMonth() + 1) + "-" +
      two(moment.getDate()) + "T" + two(moment.getHours()) + ":" + two(moment.getMinutes());
  });

  // print buttons (hidden without script: the browser's own print works then)
  each("[data-print]", function (el) {
    el.hidden = false;
    el.addEventListener("click", function () { window.print(); });
  });

  // a form is sent once: a second tap while it is on its way does nothing
  each("form", function (form) {
    form.addEventListener("submit", function (event) {
      if (form.dataset.sending === "1") { event.preventDefault(); return; }
      form.dataset.sending = "1";
      window.setTimeout(function () { form.dataset.sending = ""; }, 8000);
    });
  });

  // --- the step form ----------------------------------------------------------------------
  each("form.step-form", function (form) {
    var url = form.getAttribute("data-check");
    var timer = null;

    function fields() {
      return Array.prototype.filter.call(
        form.querySelectorAll("input, select, textarea, button"),
        function (el) { return el.type !== "hidden" && !el.disabled && el.offsetParent !== null; }
      );
    }

    function show(marks) {
      each("output.mark", function (out) {
        var name = out.id.slice(2);
        var mark = marks[name];
        out.className = "mark" + (mark ? " v-" + mark.verdict.replace(/ /g, "-") : "");
        out.textContent = "";
        if (mark) {
          var b = document.createElement("b");
          b.textContent = mark.verdict;
          out.appendChild(b);
          out.appendChild(document.createTextNode(" " + mark.message));
        }
      }, form);
    }

    function check() {
      if (!url) { return; }
      var data = new FormData(form);
      fetch(url, { method: "POST", body: data, credentials: "same-origin" })
        .then(function (response) {
          if (response.status === 401) { return null; }
          return response.ok ? response.json() : null;
        })
        .then(function (result) {
          if (!result) { return; }
          show(result.marks || {});
          var keep = form.querySelector("[data-keep]");
          if (keep) {
            var list = result.out_of_spec || [];
            if (list.length) {
              keep.hidden = false;
              var text = keep.querySelector("[data-keep-list]");
              if (text) { text.textContent = list.join(", "); }
            }
          }
        })
        .catch(function () { /* judged again on save */ });
    }

    function later() {
      if (timer) { window.clearTimeout(timer); }
      timer = window.setTimeout(check, 300);
    }

    form.addEventListener("change", later);
    form.addEventListener("input", function (event) {
      if (event.target && event.target.matches("input[type=text]")) { later(); }
    });
    form.addEventListener("keydown", function (event) {
      var el = event.target;
      if (event.key !== "Enter" || !el || el.tagName !== "INPUT") { return; }
      if (el.type === "submit" || el.type === "checkbox" || el.type === "radio") { return; }
      event.preventDefault(); // Enter moves on, as a scanner's Enter should; Save sends
      check();
      var list = fields();
      var next = list[list.indexOf(el) + 1];
      if (next) { next.focus(); }
    });
  });

  // --- the bench board --------------------------------------------------------------------
  each("[data-live]", function (box) {
    var url = box.getAttribute("data-live");
    var tag = null;
    function poll() {
      var headers = tag ? { "If-None-Match": tag } : {};
      fetch(url, { headers: headers, credentials: "same-origin" })
        .then(function (response) {
          if (response.status === 401) {
            response.json().then(function (data) {
              var why = (data && data.ended) || "ended";
              window.location.assign("/login?ended=" + encodeURIComponent(why));
            });
            return null;
          }
          if (response.status !== 200) { return null; }
          tag = response.headers.get("ETag");
          return response.text();
        })
        .then(function (html) {
          if (html === null || html === undefined) { return; }
          // the server's own escaped HTML for this list: no text typed here is lost
          var doc = new DOMParser().parseFromString(html, "text/html");
          box.replaceChildren.apply(box, Array.prototype.slice.call(doc.body.childNodes));
        })
        .catch(function () { /* try again at the next tick */ });
    }
    window.setInterval(poll, 10000);
  });
})();
