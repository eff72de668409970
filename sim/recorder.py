"""The scenario recorder (docs/scenarios.md) lives in ussd/recording.py: the phones API records
too, and the product never imports the simulator (docs/design.md "Layer rules"). Re-exported
here for scripts that record an in-process gateway."""

from ussd.recording import (
    ENV_PREFIX,
    SEED_KEYS,
    Recorder,
    exact,
    is_paging,
    secret_sms_patterns,
)

__all__ = ["ENV_PREFIX", "SEED_KEYS", "Recorder", "exact", "is_paging", "secret_sms_patterns"]
