"""cmprep: batch records for MSC-conditioned medium.

Import the service API from `cmprep.service`; the CLI (`cmprep.cli`) is a thin shell over it.
"""

__version__ = "0.1.0"
