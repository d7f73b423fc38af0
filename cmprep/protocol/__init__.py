"""Protocols: the master recipes, as validated data."""

from cmprep.protocol.loader import Problem, ProtocolError, load_file, parse_text
from cmprep.protocol.models import SITE_CHOICE, Parameter, ParamType, Protocol, Severity, Step

__all__ = [
    "SITE_CHOICE",
    "ParamType",
    "Parameter",
    "Problem",
    "Protocol",
    "ProtocolError",
    "Severity",
    "Step",
    "load_file",
    "parse_text",
]
