"""One root exception; each subclass also inherits the built-in it refines."""


class DetectorError(Exception):
    """Root of every error raised on purpose by outage-detector."""


class ConfigError(DetectorError, ValueError):
    """A pipeline or model spec is invalid; the message names the key path."""


class DecodeError(DetectorError, ValueError):
    """A record could not be decoded; it goes to the dead-letter topic with this message.

    The class name is the dead letter's ``error_kind``, so a decoder raises the subclass below that says
    what is wrong; plain DecodeError is left for a decoder failing in a way nobody foresaw.
    """


class OversizedRecord(DecodeError):
    """Over the byte limit: refused before parsing."""


class EmptyRecord(DecodeError):
    """Nothing to decode: an empty value, only a timestamp, an empty batch."""


class NotText(DecodeError):
    """Binary data or invalid UTF-8 where text is expected: usually the wrong topic or encoding."""


class MalformedRecord(DecodeError):
    """Not the configured format: invalid JSON, not logfmt, not line protocol, the wrong JSON shape."""


class MissingField(DecodeError):
    """The format is right but a field the record needs is absent (time, name, value, message)."""


class InvalidField(DecodeError):
    """A field is present but unusable: not a number, not finite, not a timestamp, the wrong type."""


class KafkaUnavailable(DetectorError, ConnectionError):
    """The configured Kafka brokers could not be reached at start-up, failed during a replay, or failed
    the live service in a way the client does not retry."""


class DeliveryError(DetectorError, RuntimeError):
    """A record the service writes (a dead letter, an incident event) was refused by Kafka."""


class StateError(DetectorError, RuntimeError):
    """A checkpoint could not be written or read back."""
