import shutil
import subprocess
import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from data_recipes.audio import AudioError, audio_info, load_audio, save_audio, stream_windows, to_mono_rate

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")


def sine(seconds, sr, freq=440.0, channels=1, amp=0.5):
    t = np.arange(int(round(seconds * sr))) / sr
    y = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    if channels == 1:
        return y
    out = np.zeros((len(y), channels), np.float32)
    out[:, 0] = y  # only the first channel carries the tone: downmixing must keep it
    return out


def peak_hz(y, sr):
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return np.argmax(spec) * sr / len(y)


def one_line_naming(exc_info, path):
    msg = str(exc_info.value)
    assert "\n" not in msg and str(path) in msg
    return msg


# ------------------------------------------------------------------ formats
@pytest.mark.parametrize("suffix,fmt,subtype,tol", [
    (".wav", "WAV", "PCM_16", 0), (".flac", "FLAC", "PCM_16", 0), (".ogg", "OGG", "VORBIS", 0),
    (".mp3", "MP3", "MPEG_LAYER_III", 0.08)])
def test_formats_decode_to_mono_16k(tmp_path, suffix, fmt, subtype, tol):
    p = tmp_path / f"tone{suffix}"
    sf.write(str(p), sine(2.0, 22050), 22050, format=fmt, subtype=subtype)
    y = load_audio(p)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) / 16000 - 2.0) <= tol + 1 / 16000
    assert abs(peak_hz(y, 16000) - 440) < 5
    assert audio_info(p).duration == pytest.approx(2.0, abs=tol + 1e-3)


def test_ogg_inside_a_wav_name(tmp_path):
    p = tmp_path / "lmms_style.wav"
    sf.write(str(p), sine(1.0, 44100), 44100, format="OGG", subtype="VORBIS")
    y = load_audio(p)
    assert len(y) == 16000 and abs(peak_hz(y, 16000) - 440) < 5
    assert audio_info(p).sample_rate == 44100


@needs_ffmpeg
def test_ffmpeg_fallback_for_what_libsndfile_cannot_read(tmp_path):
    src = tmp_path / "src.wav"
    sf.write(str(src), sine(1.5, 48000), 48000)
    p = tmp_path / "tone.m4a"  # AAC in MP4: not a libsndfile format
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), "-c:a", "aac", str(p)], check=True)
    with pytest.raises(Exception):
        sf.info(str(p))
    y = load_audio(p)
    assert abs(len(y) / 16000 - 1.5) < 0.1 and abs(peak_hz(y, 16000) - 440) < 5
    assert audio_info(p).duration == pytest.approx(1.5, abs=0.1)
    wins = list(stream_windows(p, 16000, window=1.0))
    assert [round(t, 2) for t, _ in wins] == [0.0, 1.0] and len(wins[0][1]) == 16000


@pytest.mark.parametrize("sr,channels", [(8000, 1), (44100, 2), (48000, 2), (48000, 6)])
def test_any_rate_and_channels(tmp_path, sr, channels):
    p = tmp_path / f"x_{sr}_{channels}.wav"
    sf.write(str(p), sine(1.25, sr, channels=channels), sr)
    y = load_audio(p)
    assert len(y) == 20000 and abs(peak_hz(y, 16000) - 440) < 5
    assert np.max(np.abs(y)) == pytest.approx(0.5 / channels, rel=0.05)  # mean of the channels
    info = audio_info(p)
    assert (info.sample_rate, info.channels) == (sr, channels)
    assert load_audio(p, sr=None).shape == (int(1.25 * sr),)


def test_offset_and_duration(tmp_path):
    p = tmp_path / "a.flac"
    y = np.linspace(-0.5, 0.5, 16000 * 3, dtype=np.float32)
    sf.write(str(p), y, 16000)
    part = load_audio(p, offset=1.0, duration=0.5)
    assert len(part) == 8000 and part[0] == pytest.approx(y[16000], abs=1e-4)
    with pytest.raises(AudioError, match="after 5.00 s"):
        load_audio(p, offset=5.0)


# ------------------------------------------------------------------ bad input
def test_not_audio(tmp_path):
    p = tmp_path / "notes.wav"
    p.write_text("this is not audio at all\n" * 20)
    with pytest.raises(AudioError) as e:
        load_audio(p)
    one_line_naming(e, p)
    with pytest.raises(AudioError) as e:
        audio_info(p)
    one_line_naming(e, p)
    with pytest.raises(AudioError):
        list(stream_windows(p))


def test_empty_missing_and_directory(tmp_path):
    p = tmp_path / "empty.flac"
    p.write_bytes(b"")
    with pytest.raises(AudioError, match="empty file") as e:
        load_audio(p)
    one_line_naming(e, p)
    with pytest.raises(AudioError, match="no such file"):
        load_audio(tmp_path / "missing.wav")
    with pytest.raises(AudioError, match="directory"):
        audio_info(tmp_path)
    hdr = tmp_path / "header_only.wav"
    sf.write(str(hdr), np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match="no audio samples") as e:
        load_audio(hdr)
    one_line_naming(e, hdr)
    with pytest.raises(AudioError):
        audio_info(hdr)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_wav(tmp_path, bad):
    p = tmp_path / "nan.wav"
    y = np.zeros(16000, np.float32)
    y[100:200] = bad
    sf.write(str(p), y, 16000, subtype="FLOAT")  # float WAV can hold NaN / inf
    with pytest.raises(AudioError, match="100 sample") as e:
        load_audio(p)
    one_line_naming(e, p)
    with pytest.raises(AudioError, match="NaN"):
        list(stream_windows(p, window=0.5))
    with pytest.raises(AudioError):
        to_mono_rate(np.full(10, np.nan), 16000, 16000)


def test_silence_is_valid(tmp_path):
    p = tmp_path / "silence.flac"
    sf.write(str(p), np.zeros(8000, np.float32), 8000)
    y = load_audio(p)
    assert len(y) == 16000 and not np.any(y)


# ------------------------------------------------------------------ streaming
def _write_long(path, minutes, sr, block_s=60):
    """A long file written block by block (never held whole): a 1 kHz-ish ramp of tones."""
    with sf.SoundFile(str(path), "w", samplerate=sr, channels=1, subtype="PCM_16") as f:
        for k in range(int(minutes * 60 / block_s)):
            t = np.arange(block_s * sr) / sr
            f.write((0.3 * np.sin(2 * np.pi * (200 + 10 * k) * t)).astype(np.float32))


def test_stream_windows_long_file_block_by_block(tmp_path):
    p = tmp_path / "long.wav"
    _write_long(p, 20, 8000)
    assert audio_info(p).duration == pytest.approx(1200.0)
    tracemalloc.start()
    n, lengths, starts = 0, set(), []
    for start, y in stream_windows(p, sr=16000, window=30.0):
        n += 1
        lengths.add(len(y))
        starts.append(start)
        assert y.dtype == np.float32
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert n == 40 and lengths == {480000} and starts[:3] == [0.0, 30.0, 60.0] and starts[-1] == 1170.0
    # the whole file at 16 kHz float32 is 77 MB; a window is 1.9 MB
    assert peak < 16e6, f"peak {peak / 1e6:.1f} MB: the file was loaded whole?"
    # overlapping windows: hop 10 s -> starts 0..1170, the last one reaching the end
    wins = [(s, len(y)) for s, y in stream_windows(p, sr=16000, window=30.0, hop=10.0)]
    assert len(wins) == 118 and wins[-1] == (1170.0, 480000)


def test_stream_windows_short_last_window_and_content(tmp_path):
    p = tmp_path / "65s.flac"
    y = sine(65.0, 16000)
    sf.write(str(p), y, 16000)
    wins = list(stream_windows(p, sr=16000, window=30.0))
    assert [(s, len(w)) for s, w in wins] == [(0.0, 480000), (30.0, 480000), (60.0, 80000)]
    assert np.allclose(np.concatenate([w for _, w in wins]), load_audio(p), atol=1e-4)
    with pytest.raises(ValueError):
        list(stream_windows(p, window=0))
    with pytest.raises(ValueError):
        list(stream_windows(p, window=10, hop=-1))


def test_save_audio_roundtrip(tmp_path):
    y = sine(0.5, 16000, amp=1.2)  # out of range: clipped for 16-bit FLAC
    save_audio(tmp_path / "sub" / "a.flac", y, 16000)
    back = load_audio(tmp_path / "sub" / "a.flac")
    assert len(back) == 8000 and np.max(np.abs(back)) <= 1.0
    save_audio(tmp_path / "b.wav", y, 16000)
    assert np.allclose(load_audio(tmp_path / "b.wav"), y)  # float WAV keeps the values


@pytest.mark.parametrize("sr", [8000, 22050, 44100])
def test_streamed_windows_match_the_whole_file_across_boundaries(tmp_path, sr):
    """Windows resampled with real context join seamlessly (no ringing at window edges)."""
    p = tmp_path / f"s{sr}.wav"
    sf.write(str(p), sine(25.3, sr), sr)
    wins = list(stream_windows(p, sr=16000, window=10.0))
    assert [len(w) for _, w in wins[:2]] == [160000, 160000]
    joined = np.concatenate([w for _, w in wins])
    whole = load_audio(p)
    assert len(joined) == len(whole)
    assert np.max(np.abs(joined - whole)) < 1e-4


@needs_ffmpeg
def test_ffmpeg_streaming_windows(tmp_path):
    """Formats libsndfile cannot read (AAC in .m4a, common from phones) stream through an ffmpeg
    pipe: the same windows as the whole decode, overlapping or with gaps, memory one window."""
    src = tmp_path / "src.wav"
    with sf.SoundFile(str(src), "w", samplerate=8000, channels=1, subtype="PCM_16") as f:
        for k in range(4):  # 2 minutes, written block by block
            f.write(sine(30.0, 8000, freq=200 + 50 * k))
    p = tmp_path / "long.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), "-c:a", "aac", "-b:a", "24k", str(p)], check=True)
    info = audio_info(p)  # from the container header (ffprobe), not a decode
    assert info.duration == pytest.approx(120.0, abs=0.1) and info.sample_rate == 8000
    tracemalloc.start()
    starts, lengths = [], []
    for s, w in stream_windows(p, sr=16000, window=10.0):
        starts.append(s)
        lengths.append(len(w))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert starts == [10.0 * k for k in range(len(starts))] and len(starts) in (12, 13)
    assert set(lengths[:-1]) == {160000} and 0 < lengths[-1] <= 160000
    assert peak < 4e6, f"peak {peak / 1e6:.1f} MB (whole file: 7.7 MB, a window: 0.64 MB)"
    whole = load_audio(p)
    assert np.array_equal(np.concatenate([w for _, w in stream_windows(p, sr=16000, window=10.0)]), whole)
    over = list(stream_windows(p, sr=16000, window=10.0, hop=4.0))
    assert [s for s, _ in over[:3]] == [0.0, 4.0, 8.0] and np.array_equal(over[2][1], whole[128000:288000])
    gaps = list(stream_windows(p, sr=16000, window=5.0, hop=12.5))
    assert [s for s, _ in gaps[:3]] == [0.0, 12.5, 25.0] and np.array_equal(gaps[2][1], whole[400000:480000])
    native = next(stream_windows(p, sr=None, window=1.0))
    assert native[0] == 0.0 and len(native[1]) == 48000  # ffmpeg's own rate when none is asked


@needs_ffmpeg
def test_ffmpeg_stream_of_an_empty_audio_stream(tmp_path):
    p = tmp_path / "empty.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "0",
                    "-c:a", "aac", str(p)], check=True)
    with pytest.raises(AudioError) as e:
        list(stream_windows(p))
    one_line_naming(e, p)


# ------------------------------------------------------------------ what a new user hits
def test_truncated_wav_warns_with_header_and_readable_duration(tmp_path):
    from data_recipes.audio import AudioWarning

    full = tmp_path / "full.wav"
    sf.write(str(full), sine(5.0, 16000), 16000, subtype="PCM_16")
    cut = tmp_path / "cut.wav"
    cut.write_bytes(full.read_bytes()[:10000])  # header + 0.31 s of samples
    for read in (audio_info, load_audio, lambda p: list(stream_windows(p, window=1.0))):
        with pytest.warns(AudioWarning, match=r"cut\.wav: truncated.*declares 5\.00 s.*only 0\.31 s"):
            read(cut)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an intact file, or one of another format, says nothing
        load_audio(full)
        audio_info(full)
        flac = tmp_path / "ok.flac"
        sf.write(str(flac), sine(1.0, 16000), 16000)
        load_audio(flac)


@needs_ffmpeg
def test_truncated_flac_warns_too(tmp_path):
    from data_recipes.audio import AudioWarning

    full = tmp_path / "full.flac"
    sf.write(str(full), (0.1 * np.random.default_rng(0).standard_normal(5 * 16000)).astype(np.float32), 16000)
    cut = tmp_path / "cut.flac"
    cut.write_bytes(full.read_bytes()[:full.stat().st_size // 4])
    with pytest.warns(AudioWarning, match=r"cut\.flac: truncated.*declares 5\.00 s"):
        y = load_audio(cut)
    assert 0 < len(y) < 5 * 16000


@pytest.mark.parametrize("sr", [16000, 44100])
def test_nan_is_reported_at_its_time(tmp_path, sr):
    p = tmp_path / "nan_at_5s.wav"
    y = np.zeros(8 * sr, np.float32)
    y[5 * sr] = np.nan
    sf.write(str(p), y, sr, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"1 sample\(s\) are NaN or infinite, the first at 5\.00 s"):
        load_audio(p)
    with pytest.raises(AudioError, match=r"the first at 5\.00 s"):
        list(stream_windows(p, window=2.0))      # windows starting at 4 s, read with resampling context
    with pytest.raises(AudioError, match=r"the first at 5\.00 s"):
        load_audio(p, offset=3.0)
    with pytest.raises(AudioError, match=r"the first at 0\.50 s"):
        to_mono_rate(np.r_[np.zeros(sr // 2), np.nan], sr, 16000)


def test_unreadable_file_says_permission_denied(tmp_path, monkeypatch):
    import builtins

    import data_recipes.audio as audio_mod

    p = tmp_path / "locked.wav"
    sf.write(str(p), sine(1.0, 16000), 16000)
    real_open = builtins.open

    def no_permission(path, *a, **kw):  # what open() does on a chmod 000 file for a non-root user
        if str(path) == str(p):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *a, **kw)

    monkeypatch.setattr(audio_mod, "open", no_permission, raising=False)
    for read in (audio_info, load_audio, lambda q: list(stream_windows(q))):
        with pytest.raises(AudioError, match="permission denied") as e:
            read(p)
        assert "decodable" not in one_line_naming(e, p)


@pytest.mark.skipif(not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() == 0,
                    reason="root reads any file")
def test_chmod_000_file_says_permission_denied(tmp_path):
    p = tmp_path / "locked.wav"
    sf.write(str(p), sine(1.0, 16000), 16000)
    p.chmod(0)
    try:
        with pytest.raises(AudioError, match="permission denied"):
            load_audio(p)
    finally:
        p.chmod(0o644)


def test_missing_file_in_a_missing_folder_says_no_such_file(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        audio_info(tmp_path / "nowhere" / "x.wav")


@pytest.mark.parametrize("shape,want", [((2, 44100), 16000), ((44100, 2), 16000), ((1, 44100), 16000),
                                        ((44100,), 16000)])
def test_array_to_mono_reads_the_layout(shape, want):
    from data_recipes.audio import array_to_mono

    y = np.zeros(shape, np.float32)
    assert array_to_mono(y, 44100, 16000).shape == (want,)


@pytest.mark.parametrize("shape", [(8, 8), (9, 100), (3, 63), (2, 2, 100)])
def test_array_to_mono_refuses_ambiguous_shapes(shape):
    from data_recipes.audio import array_to_mono

    with pytest.raises(AudioError, match=r"shape \(" + ", ".join(map(str, shape))):
        array_to_mono(np.zeros(shape, np.float32), 16000, 16000)
