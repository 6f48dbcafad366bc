"""earmark's frame scorer: a FineLAP/FLAM-style contrastive audio-text model.

Public API (imported lazily, so ``import contrastive`` does not pull in torch):

- ``Scorer.from_pretrained(path=None)``: inference on audio of any length (None = the embedded
  default in ``contrastive/default``; also a shipped name, "zeroshot" or "cnn", or a Hugging Face
  Hub id, offline from the hub cache): ``embed``, ``frame_scores``, ``events``, ``candidates``,
  ``exists``, ``predict`` (eval's Predictor protocol); ``save_pretrained(dir)`` writes it back
  with its inference settings.
- ``ScorerModel.from_pretrained(path)`` / ``save_pretrained``; ``create_model(config)``.
- For downstream models (the grounder): ``model.encode_audio(wave[B, S] @16 kHz)`` ->
  (global [B, D], dense [B, T, D]) L2-normalised in the shared space, ``model.audio_features(wave)``
  -> pre-projection (global [B, width], dense [B, T, width]); ``model.frames_per_second`` (25).
"""

__all__ = ["Scorer", "ScorerModel", "create_model", "DEFAULT_DIR"]


def __getattr__(name):
    if name in ("Scorer", "DEFAULT_DIR"):
        from . import scorer

        return getattr(scorer, name)
    if name in ("ScorerModel", "create_model"):
        from . import model

        return getattr(model, name)
    raise AttributeError(f"module 'contrastive' has no attribute {name!r}")
