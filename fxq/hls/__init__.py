"""The hls4ml side: emit a QuantizedGraph as an hls4ml project, C-simulate and compare."""
from fxq.hls.emit import EmitError, HlsSettings, emit_hls
from fxq.hls.verify import VerifyResult, verify

__all__ = ["EmitError", "HlsSettings", "VerifyResult", "emit_hls", "verify"]
