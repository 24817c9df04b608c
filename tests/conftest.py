"""Settings shared by every test."""

from hypothesis import HealthCheck, settings

# The machine is shared and slow at times: hypothesis judges correctness, not speed.
settings.register_profile(
    "riemann", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("riemann")
