"""One root exception; each subclass also inherits the built-in it refines."""


class DetectorError(Exception):
    """Root of every error raised on purpose by outage-detector."""


class ConfigError(DetectorError, ValueError):
    """A pipeline or model spec is invalid; the message names the key path."""


class DecodeError(DetectorError, ValueError):
    """A record could not be decoded; it goes to the dead-letter topic with this message."""


class KafkaUnavailable(DetectorError, ConnectionError):
    """The configured Kafka brokers could not be reached at start-up, or failed during a replay."""


class StateError(DetectorError, RuntimeError):
    """A checkpoint could not be written or read back."""
