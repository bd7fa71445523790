"""Imports every built-in detector module so their @register decorators run."""

# Each import registers one or more detectors; keep this list in sync with the package.
import detector.detectors.robust_seasonal  # noqa: F401,E402
import detector.detectors.trend_drift  # noqa: F401,E402
import detector.logs.session_detector  # noqa: F401,E402
import detector.detectors.river_adapter  # noqa: F401,E402
import detector.detectors.sklearn_adapter  # noqa: F401,E402
