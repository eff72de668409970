"""ussd-sim: a USSD gateway simulator and command interpreter."""

__version__ = "0.1.0"
