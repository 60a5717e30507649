"""The audio pipeline: sniff, transcode, synthesise, cache, stage.

    data/text --sniff / espeak-ng / Piper / ElevenLabs--> sox --> <data_dir>/cache/**/<hash>.wav
              --stager.put(path, asset_id)--> <sounds dir>/<asset_id>.wav
    Asterisk plays asterisk_path(asset_id, config)

Every failure a user can cause or see is a MediaError with a stable code (see errors.py).
"""
from .errors import MediaError
from .pipeline import Rendered, pick_provider, prepare_upload, render_tts, stream_tts
from .sniff import sniff
from .staging import LocalStager, SftpStager, asterisk_path, make_stager
from .transcode import duration, transcode

__all__ = ["LocalStager", "MediaError", "Rendered", "SftpStager", "asterisk_path", "duration",
           "make_stager", "pick_provider", "prepare_upload", "render_tts", "sniff", "stream_tts",
           "transcode"]
