"""The bundled default model: a loadable few-MB package whose outputs behave on real faces."""

from __future__ import annotations

import numpy as np
import pytest

from wildaffect.models.package import META_FILE, WEIGHTS_FILE, bundled_model_dir, load_package

NEUTRAL_DEV_PHOTO = "Aaron_Eckhart_0001.jpg"  # labelled Neutral in faces-expression, checked by eye


@pytest.fixture(scope="module")
def predictor():
    from wildaffect.predict.predictor import Predictor

    return Predictor()  # the bundled default


def test_the_package_is_small_and_says_where_each_output_comes_from():
    folder = bundled_model_dir()
    assert (folder / WEIGHTS_FILE).stat().st_size < 10 * 2**20
    model, meta = load_package(folder)
    assert meta["outputs"] == {"EXPR": "model", "AU": "blendshapes-facs", "VA": "circumplex"}
    assert model.config.input_norm and not model.training
    assert (folder / META_FILE).is_file()
    cv = meta["card"]["cross_validation"]["faces"]
    assert cv["macro_f1_mean"] > 0.357, "must beat the blendshape logistic regression"


def _smiles(predictor, path):
    row = predictor.predict(path).iloc[0]
    assert row["face"] == 1, f"no face found in {path}"
    return row


def test_a_smiling_photo_scores_happier_than_a_neutral_one(predictor, fixtures_dir, shared_data,
                                                           tmp_path):
    from skimage import data as skimage_data
    from skimage.io import imsave

    astronaut = tmp_path / "astronaut.png"
    imsave(astronaut, skimage_data.astronaut())
    neutral = _smiles(predictor, shared_data / "faces-expression" / "images" / NEUTRAL_DEV_PHOTO)
    for smiling_photo in (astronaut, fixtures_dir / "media" / "single_face.jpg"):
        smiling = _smiles(predictor, smiling_photo)
        assert smiling["Happiness"] > neutral["Happiness"], smiling_photo.name
        assert smiling["expression"] == "Happiness", smiling_photo.name
        for au in ("AU6", "AU12"):
            assert smiling[au] > neutral[au], (smiling_photo.name, au)
        assert smiling["valence"] > neutral["valence"]
    assert np.isfinite(neutral[["valence", "arousal"]].to_numpy(float)).all()


def test_bf16_autocast_agrees_with_fp32(predictor, fixtures_dir):
    from wildaffect.labels import EXPR_NAMES
    from wildaffect.predict.predictor import Predictor

    clip = fixtures_dir / "media" / "1001_DFA_HAP_XX.flv"
    fp32 = predictor.predict(clip)
    bf16 = Predictor(dtype="bf16").predict(clip)
    gap = np.abs(bf16[list(EXPR_NAMES)].to_numpy(float) - fp32[list(EXPR_NAMES)].to_numpy(float))
    assert gap.max() < 0.02
    assert (bf16["expression"] == fp32["expression"]).mean() >= 0.95


def test_audio_only_input_goes_to_the_voice_companion(predictor, fixtures_dir):
    """The default hears voices in talking faces; speech alone goes to the voice-only model,
    whose leave-one-speaker-out recall is higher (model card)."""
    from wildaffect.labels import AU_NAMES, EXPR_NAMES
    from wildaffect.predict.predictor import InputSummary

    assert predictor.config.has_audio and predictor.voice_model == "default-voice"
    summary = InputSummary()
    chunks = list(predictor.iter_chunks(fixtures_dir / "media" / "1002_DFA_HAP_XX.mp3", summary))
    table = __import__("pandas").concat([c.rows for c in chunks], ignore_index=True)
    assert summary.audio_only and "companion" in summary.notes[-1]
    np.testing.assert_allclose(np.diff(table["time_s"]), 0.02, atol=1e-9)
    assert (table["face"] == 0).all() and table[list(AU_NAMES)].isna().all(axis=None)
    np.testing.assert_allclose(table[list(EXPR_NAMES)].sum(axis=1), 1.0, atol=1e-5)
    voice, meta = load_package(bundled_model_dir("default-voice"))
    assert meta["model_config"]["d_audio"] > 0 and meta["outputs"]["EXPR"] == "model"
    # What ships is what the recipe (and so the model card's cross-validation) describes.
    from wildaffect.train.voice import Recipe

    recipe = Recipe()
    assert meta["model_config"]["audio_encoder"] == recipe.audio
    assert len(getattr(voice, "members", [voice])) == meta.get("members", 1) == len(recipe.seeds)


def test_the_voice_changes_a_talking_face_prediction(predictor, fixtures_dir):
    """Face + voice vs the same clip's face alone: the audio branch is used, not ignored."""
    from wildaffect.labels import EXPR_NAMES
    from wildaffect.predict.predictor import Predictor

    clip = fixtures_dir / "media" / "1001_DFA_HAP_XX.flv"
    both = predictor.predict(clip)
    face_only = Predictor(use_audio=False).predict(clip)
    assert (both["face"] == 1).all() and len(both) == len(face_only)
    gap = np.abs(both[list(EXPR_NAMES)].to_numpy(float) - face_only[list(EXPR_NAMES)].to_numpy(float))
    assert gap.max() > 0.01
