"""The hls4ml side: emit a QuantizedGraph as an hls4ml project, C-simulate and compare."""
from fxq.hls.emit import EmitError, emit_hls
from fxq.hls.verify import VerifyResult, verify
from fxq.target import Target

HlsSettings = Target           # the name of the settings before Target took them over

__all__ = ["EmitError", "HlsSettings", "VerifyResult", "emit_hls", "verify"]
