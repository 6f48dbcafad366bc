"""Audio in: any common file at any rate and channel count -> mono float32 at the rate asked for.

Decoding goes through libsndfile (soundfile: wav, flac, ogg/vorbis, opus, mp3) which reads the
container from the header, so an Ogg stream behind a ``.wav`` name decodes too; what libsndfile
cannot read falls back to ffmpeg when it is on PATH. Resampling is soxr.

Every failure raises :class:`AudioError`, one line that names the file and the reason.
Hours-long files are read in fixed windows by :func:`stream_windows` without loading them whole.
"""
from __future__ import annotations

import math
import shutil
import struct
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

__all__ = ["AudioError", "AudioWarning", "AudioInfo", "audio_info", "load_audio", "stream_windows", "to_mono_rate",
           "array_to_mono", "save_audio", "MAX_CHANNELS"]

# an array axis this short is taken for channels (7.1 surround has 8); the other axis must be
# far longer for the layout to be unambiguous
MAX_CHANNELS = 8
MIN_ARRAY_SAMPLES = 64
# a decode this much shorter than its header says is a truncated file, not codec padding
SHORT_READ_S = 0.05


class AudioError(ValueError):
    """An input that is not usable audio. The message names the file."""

    def __init__(self, path, reason: str):
        self.path, self.reason = path, reason
        super().__init__(f"{path}: {reason}")


class AudioWarning(UserWarning):
    """Audio that is usable but not what its header promises (e.g. a truncated file)."""


@dataclass(frozen=True)
class AudioInfo:
    path: str
    duration: float
    sample_rate: int
    channels: int
    frames: int


def _check_path(path) -> Path:
    p = Path(path)
    if not p.exists():
        raise AudioError(path, "no such file")
    if p.is_dir():
        raise AudioError(path, "is a directory, not an audio file")
    if p.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    # opened here so that permissions are reported as such, not as "not decodable" by the decoders
    try:
        with open(p, "rb") as fh:
            fh.read(1)
    except PermissionError:
        raise AudioError(path, "permission denied (the file exists but cannot be read)") from None
    except FileNotFoundError:
        raise AudioError(path, "no such file") from None
    except OSError as exc:
        raise AudioError(path, f"cannot be read ({exc.strerror or exc})") from None
    return p


def _wav_declared_frames(p: Path) -> int | None:
    """Frames the RIFF/WAVE header's data chunk declares, or None (not a WAV, or a streaming
    writer's placeholder size). libsndfile silently clamps a truncated file to what is there."""
    with open(p, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        block_align = 0
        while True:
            chunk = fh.read(8)
            if len(chunk) < 8:
                return None
            cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"fmt " and size >= 14:
                fmt = fh.read(14)
                if len(fmt) < 14:
                    return None
                block_align = struct.unpack("<H", fmt[12:14])[0]
                fh.seek(size - 14 + (size & 1), 1)
            elif cid == b"data":
                if not block_align or size in (0, 0xFFFFFFFF):
                    return None
                return size // block_align
            else:
                fh.seek(size + (size & 1), 1)


def _warn_if_truncated(p: Path, frames: int, sample_rate: int) -> None:
    declared = _wav_declared_frames(p)
    if declared is not None and declared > frames:
        _warn_truncated(p, declared / sample_rate, frames / sample_rate)


def _warn_truncated(p: Path, header_s: float, readable_s: float) -> None:
    warnings.warn(f"{p}: truncated file: its header declares {header_s:.2f} s but only {readable_s:.2f} s can "
                  f"be read; analysing the readable part", AudioWarning, stacklevel=4)


def audio_info(path) -> AudioInfo:
    """Duration, rate and channels, read from the header (libsndfile, else ffprobe; a streamed
    ffmpeg decode counts the samples when neither can tell)."""
    p = _check_path(path)
    import soundfile as sf

    try:
        i = sf.info(str(p))
        if i.frames <= 0 or i.samplerate <= 0:
            raise AudioError(path, "no audio samples in file")
        _warn_if_truncated(p, i.frames, i.samplerate)
        return AudioInfo(str(p), i.frames / i.samplerate, int(i.samplerate), int(i.channels), int(i.frames))
    except (sf.LibsndfileError, RuntimeError, TypeError):
        pass
    probed = _ffprobe_info(p)
    if probed is not None:
        return probed
    # no usable header: count the decoded samples (streamed, so an hours-long file is no problem)
    n, rate = 0, 16000
    for _, y in _ffmpeg_windows(p, rate, 600.0, 600.0):
        n += len(y)
    return AudioInfo(str(p), n / rate, rate, 1, n)


def _ffprobe_info(p: Path) -> AudioInfo | None:
    """Duration, rate and channels of the first audio stream from the container header, or None
    when ffprobe is missing or cannot tell (then the caller decodes)."""
    import json

    exe = shutil.which("ffprobe")
    if exe is None:
        return None
    cmd = [exe, "-v", "error", "-select_streams", "a:0", "-show_entries",
           "stream=sample_rate,channels,duration:format=duration", "-of", "json", str(p)]
    try:
        res = subprocess.run(cmd, capture_output=True, timeout=120)
        d = json.loads(res.stdout or b"{}")
        st = (d.get("streams") or [{}])[0]
        dur = float(st.get("duration") or (d.get("format") or {}).get("duration") or 0)
        rate, ch = int(st.get("sample_rate") or 0), int(st.get("channels") or 0)
    except (subprocess.TimeoutExpired, ValueError, TypeError, AttributeError):
        return None
    if res.returncode != 0 or not (dur > 0 and rate > 0 and ch > 0):
        return None
    return AudioInfo(str(p), dur, rate, ch, int(round(dur * rate)))


def _ffmpeg_decode(p: Path, sr: int | None) -> tuple[np.ndarray, int]:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise AudioError(p, "not a format libsndfile reads, and ffmpeg is not installed to try")
    rate = sr or 48000
    cmd = [exe, "-v", "error", "-nostdin", "-i", str(p), "-ac", "1", "-ar", str(rate), "-f", "f32le", "-"]
    try:
        res = subprocess.run(cmd, capture_output=True, timeout=3600)
    except subprocess.TimeoutExpired:
        raise AudioError(p, "ffmpeg decode timed out") from None
    if res.returncode != 0:
        msg = res.stderr.decode(errors="replace").strip().splitlines()
        raise AudioError(p, f"not decodable audio ({msg[-1] if msg else 'ffmpeg failed'})")
    y = np.frombuffer(res.stdout, dtype="<f4").astype(np.float32)
    if y.size == 0:
        raise AudioError(p, "no audio samples in file")
    return y, rate


def _ffmpeg_windows(p: Path, sr: int, window: float, hop: float) -> Iterator[tuple[float, np.ndarray]]:
    """:func:`stream_windows` through an ffmpeg pipe (mono float32 at ``sr``): same windows, and
    memory bounded by one window, whatever the file's length."""
    import tempfile

    exe = shutil.which("ffmpeg")
    if exe is None:
        raise AudioError(p, "not a format libsndfile reads, and ffmpeg is not installed to try")
    w, h = int(round(window * sr)), int(round(hop * sr))
    cmd = [exe, "-v", "error", "-nostdin", "-i", str(p), "-ac", "1", "-ar", str(sr), "-f", "f32le", "-"]
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: ffmpeg can never block on it
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        try:
            buf, start, skip, eof, any_out = np.zeros(0, np.float32), 0, 0, False, False
            rest = b""  # bytes of a sample split across two reads

            def read(n_samples: int) -> np.ndarray:
                nonlocal rest, eof
                data = rest + proc.stdout.read(4 * n_samples - len(rest))
                if len(data) < 4 * n_samples:
                    eof = True
                cut = len(data) - len(data) % 4
                rest = data[cut:]
                return np.frombuffer(data[:cut], dtype="<f4")

            while True:
                while skip and not eof:  # hop longer than the window: drop the gap
                    skip -= len(read(min(skip, 1 << 20)))
                # one sample beyond the window tells whether this window reaches the end
                while len(buf) < w + 1 and not eof:
                    buf = np.concatenate([buf, read(w + 1 - len(buf))])
                if len(buf) == 0:
                    break
                y = buf[:w]
                any_out = True
                yield start / sr, to_mono_rate(y, sr, None, name=str(p), start=start / sr).copy()
                if len(buf) <= w:  # end of the stream
                    break
                drop = min(h, len(buf))
                buf, start, skip = buf[drop:], start + h, h - drop
        finally:
            proc.stdout.close()
            proc.kill()
            proc.wait()
        if not any_out:
            err.seek(0)
            msg = err.read().decode(errors="replace").strip().splitlines()
            if msg or proc.returncode not in (0, -9):  # -9: our own kill after the end of output
                raise AudioError(p, f"not decodable audio ({msg[-1] if msg else 'ffmpeg failed'})")
            raise AudioError(p, "no audio samples in file")


def to_mono_rate(y: np.ndarray, sr: int, target_sr: int | None, *, name="audio", start: float = 0.0) -> np.ndarray:
    """(samples,) or (samples, channels) at ``sr`` -> mono float32 at ``target_sr``; rejects NaN/inf,
    naming the time of the first bad sample (``start``: the time of ``y[0]`` in the recording)."""
    y = np.asarray(y)
    if y.ndim == 2:
        y = y.mean(axis=1)
    elif y.ndim != 1:
        raise AudioError(name, f"expected 1-D or 2-D samples, got shape {y.shape}")
    y = y.astype(np.float32, copy=False)
    if y.size == 0:
        raise AudioError(name, "no audio samples")
    if not np.isfinite(y).all():
        bad = ~np.isfinite(y)
        first = start + int(np.argmax(bad)) / sr
        raise AudioError(name, f"{int(bad.sum())} sample(s) are NaN or infinite, the first at {first:.2f} s")
    if target_sr is not None and sr != target_sr:
        import soxr

        y = soxr.resample(y, sr, target_sr).astype(np.float32, copy=False)
    return y


def array_to_mono(y, sample_rate, target_sr: int | None, *, name: str = "audio array") -> np.ndarray:
    """Samples a caller hands over -> mono float32 at ``target_sr``.

    ``y``: (samples,), (channels, samples) or (samples, channels). A 2-D layout is accepted only
    when it is unambiguous: exactly one axis has at most :data:`MAX_CHANNELS` entries and the
    other at least :data:`MIN_ARRAY_SAMPLES` (a (2, 2) or (100, 200) array could be either).
    ``sample_rate`` is required: guessing it puts every answer at the wrong time.
    """
    if sample_rate is None:
        raise AudioError(name, "sample_rate is required for an array of samples (e.g. sample_rate=44100)")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float, np.integer, np.floating)) \
            or not (math.isfinite(sample_rate) and sample_rate > 0 and float(sample_rate).is_integer()):
        raise AudioError(name, f"sample_rate must be a positive whole number of Hz, got {sample_rate!r}")
    try:
        arr = np.asarray(y, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise AudioError(name, f"not audio samples ({exc})") from None
    if arr.ndim == 2:
        arr = _channels_last(arr, name)
    elif arr.ndim != 1:
        raise AudioError(name, f"expected (samples,), (channels, samples) or (samples, channels), got shape {arr.shape}")
    return to_mono_rate(arr, int(sample_rate), target_sr, name=name)


def _channels_last(arr: np.ndarray, name: str) -> np.ndarray:
    rows, cols = arr.shape
    if cols <= MAX_CHANNELS < MIN_ARRAY_SAMPLES <= rows:
        return arr
    if rows <= MAX_CHANNELS < MIN_ARRAY_SAMPLES <= cols:
        return arr.T
    raise AudioError(name, f"ambiguous array shape {arr.shape}: give (samples,), or (channels, samples) / "
                           f"(samples, channels) with at most {MAX_CHANNELS} channels and at least "
                           f"{MIN_ARRAY_SAMPLES} samples")


def load_audio(path, sr: int | None = 16000, *, offset: float = 0.0, duration: float | None = None) -> np.ndarray:
    """Mono float32 samples at ``sr`` (None keeps the file's rate), optionally a slice in seconds."""
    p = _check_path(path)
    import soundfile as sf

    header_s = None  # what the header promises, when libsndfile could read one
    try:
        with sf.SoundFile(str(p)) as f:
            file_sr = f.samplerate
            header_s = f.frames / file_sr
            start = int(round(offset * file_sr))
            if start:
                f.seek(min(start, f.frames))
            n = -1 if duration is None else int(round(duration * file_sr))
            y = f.read(frames=n, dtype="float32", always_2d=True)
            _warn_if_truncated(p, f.frames, file_sr)
    except (sf.LibsndfileError, RuntimeError, TypeError):
        # also a compressed file cut short (libsndfile stops with "lost sync"): ffmpeg decodes what is there
        y, file_sr = _ffmpeg_decode(p, sr)
        a = int(round(offset * file_sr))
        b = None if duration is None else a + int(round(duration * file_sr))
        y = y[a:b]
    if duration is None and header_s is not None and header_s - (offset + len(y) / file_sr) > SHORT_READ_S:
        _warn_truncated(p, header_s, offset + len(y) / file_sr)
    if y.size == 0:
        raise AudioError(path, "no audio samples" + (f" after {offset:.2f} s" if offset else ""))
    return to_mono_rate(y, file_sr, sr, name=str(path), start=offset)


def stream_windows(path, sr: int = 16000, window: float = 30.0, hop: float | None = None,
                   ) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(start_seconds, samples)`` windows of ``window`` s every ``hop`` s (default: no
    overlap), mono at ``sr``, reading the file block by block. The last window may be shorter.
    Memory stays at one window whatever the file's length.
    """
    hop = window if hop is None else hop
    if hop <= 0 or window <= 0:
        raise ValueError(f"window ({window}) and hop ({hop}) must be positive")
    p = _check_path(path)
    import soundfile as sf

    try:
        f = sf.SoundFile(str(p))
    except (sf.LibsndfileError, RuntimeError, TypeError):
        # not a libsndfile format (m4a/aac, video containers...): stream ffmpeg's decoded output
        yield from _ffmpeg_windows(p, sr or 48000, window, hop)
        return
    with f:
        fsr = f.samplerate
        w, h = int(round(window * fsr)), int(round(hop * fsr))
        if f.frames == 0:
            raise AudioError(path, "no audio samples")
        _warn_if_truncated(p, f.frames, fsr)
        # Resampling a window on its own would treat its outside as silence and ring at the
        # edges (~3 % of full scale at 8->16 kHz); read 50 ms of real context on each side,
        # resample, and cut it off again. The context is a whole number of resampling periods
        # (fsr/gcd samples) so the cut falls exactly on an output sample.
        pad = 0
        if sr is not None and sr != fsr:
            step = fsr // math.gcd(fsr, sr)
            pad = step * math.ceil(0.05 * fsr / step)
        a = 0
        while a < f.frames:
            a0 = max(0, a - pad)
            f.seek(a0)
            block = f.read(frames=(a - a0) + w + pad, dtype="float32", always_2d=True)
            if block.size == 0:
                break
            y = to_mono_rate(block, fsr, sr, name=str(path), start=a0 / fsr)
            if pad:
                lead = int(round((a - a0) * sr / fsr))
                y = y[lead: lead + int(round(min(w, f.frames - a) * sr / fsr))]
            yield a / fsr, y
            if a + w >= f.frames:
                break
            a += h


def save_audio(path, y: np.ndarray, sr: int) -> None:
    """Write mono float samples; the format follows the suffix (.flac is 16-bit, .wav float)."""
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # soundfile's default for .wav is PCM_16, not float: ask for FLOAT so the docstring holds
    suffix = path.suffix.lower()
    subtype = "PCM_16" if suffix == ".flac" else "FLOAT" if suffix == ".wav" else None
    if subtype == "PCM_16":
        y = np.clip(y, -1.0, 1.0)
    sf.write(str(path), y, sr, subtype=subtype)
