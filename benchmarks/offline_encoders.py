"""Cost and informativeness of the offline encoders (mediapipe-regions, logmel-egemaps).

Prints a table and writes a JSON next to ``--out``:

* cost: visual encode ms per frame (T frames of real faces, with and without HOG), audio
  encode ms per second of audio (CREMA-D speech, tiled);
* ``--probe``: linear probes (drop constant columns, standardise, PCA to 256 dims when wider,
  class-balanced logistic regression C=0.05), our features against the team's baselines
  under the same protocol: faces-expression, 5-fold GroupKFold by person: the 52
  blendshapes vs region tokens (with / without HOG), macro-F1; EmoDB, leave-one-speaker-out:
  eGeMAPS v02 functionals vs mean+std over time of our 20 ms features, UAR. A probe only:
  the real model (HGA + AG-SSM) sees the tokens and the time course, not a flat vector.

Usage: python benchmarks/offline_encoders.py [--probe] [--limit N] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
#: Wider features are reduced to this many principal components before the probe.
PROBE_DIMS = 256


def _face_inputs(landmarker, image):
    from wildaffect.face.align import align_face
    from wildaffect.face.mapping import to_ibug68

    faces = landmarker.detect(image)
    if not faces:
        return None
    face = faces[0]
    h, w = image.shape[:2]
    aligned = align_face(image, to_ibug68(face.landmarks) * np.array([w, h]))
    return aligned.landmarks68_norm, face.blendshapes, face.pose, aligned.crop


def face_dataset(limit: int | None, cache: Path):
    """MediaPipe outputs for the faces-expression photos (cached: MediaPipe is the slow part)."""
    import cv2
    import pandas as pd

    from wildaffect.face.landmarker import FaceLandmarker

    if cache.exists():
        data = np.load(cache, allow_pickle=False)
        return {k: data[k] for k in data.files}
    labels = pd.read_csv(DATA / "faces-expression" / "labels.csv")
    if limit:
        labels = labels.iloc[:limit]
    rows = {"lm": [], "bs": [], "pose": [], "crop": [], "label": [], "person": []}
    with FaceLandmarker(mode="image", max_faces=1) as landmarker:
        for name, expression in zip(labels.image, labels.expression):
            bgr = cv2.imread(str(DATA / "faces-expression" / "images" / name))
            found = _face_inputs(landmarker, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            if found is None:
                continue
            for key, value in zip(("lm", "bs", "pose", "crop"), found):
                rows[key].append(value)
            rows["label"].append(expression)
            rows["person"].append(re.sub(r"_\d+\.\w+$", "", name))
    data = {
        k: np.stack(v) if k not in ("label", "person") else np.array(v) for k, v in rows.items()
    }
    np.savez(cache, **data)
    return data


def probe(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, metric: str) -> float:
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score, f1_score
    from sklearn.model_selection import GroupKFold, LeaveOneGroupOut
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features = features[:, features.std(axis=0) > 0]
    splitter = GroupKFold(n_splits=5) if metric == "macro_f1" else LeaveOneGroupOut()
    predicted = np.empty_like(labels)
    for train, test in splitter.split(features, labels, groups):
        steps = [StandardScaler()]
        if features.shape[1] > PROBE_DIMS:
            steps.append(PCA(PROBE_DIMS, random_state=0))
        steps.append(LogisticRegression(C=0.05, max_iter=300, tol=1e-3, class_weight="balanced"))
        model = make_pipeline(*steps)
        model.fit(features[train], labels[train])
        predicted[test] = model.predict(features[test])
    if metric == "macro_f1":
        return float(f1_score(labels, predicted, average="macro"))
    return float(balanced_accuracy_score(labels, predicted))


def speech_dataset():
    import av
    import pandas as pd

    labels = pd.read_csv(DATA / "speech-emotion" / "labels.csv", dtype={"speaker": str})
    clips = []
    for name in labels.file:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=16_000)
        with av.open(str(DATA / "speech-emotion" / "wav" / name)) as container:
            pieces = [
                f.to_ndarray().reshape(-1)
                for frame in container.decode(audio=0)
                for f in resampler.resample(frame)
            ]
        clips.append(np.concatenate(pieces))
    return clips, labels.emotion.to_numpy(), labels.speaker.to_numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probe", action="store_true", help="also run the linear probes")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N photos")
    parser.add_argument("--frames", type=int, default=256, help="T for the visual timing")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "offline_encoders.json")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/wildaffect_faces_probe.npz"))
    args = parser.parse_args()

    from wildaffect.encoders.offline_audio import OfflineAudioEncoder
    from wildaffect.encoders.offline_visual import OfflineVisualEncoder

    results: dict[str, float] = {}
    faces = face_dataset(args.limit if args.probe else 40, args.cache if args.probe else
                         Path("/tmp/wildaffect_faces_timing.npz"))  # fmt: skip
    take = np.arange(args.frames) % len(faces["lm"])
    inputs = (faces["lm"][take], faces["bs"][take], faces["pose"][take], faces["crop"][take],
              np.ones(len(take), bool))  # fmt: skip
    for appearance in (True, False):
        encoder = OfflineVisualEncoder(use_appearance=appearance)
        encoder.encode(*[x[:2] for x in inputs])  # warm-up (OpenCV, imports)
        start = time.perf_counter()
        encoder.encode(*inputs)
        key = "visual_ms_per_frame" + ("" if appearance else "_no_hog")
        results[key] = (time.perf_counter() - start) / len(take) * 1e3

    audio = OfflineAudioEncoder()
    import av

    path = min((DATA / "media" / "crema-d").glob("*.flv"))
    resampler = av.AudioResampler(format="flt", layout="mono", rate=16_000)
    with av.open(str(path)) as container:
        speech = np.concatenate([f.to_ndarray().reshape(-1) for frame in container.decode(audio=0)
                                 for f in resampler.resample(frame)])  # fmt: skip
    speech = np.tile(speech, int(np.ceil(10 * 16_000 / len(speech))))[: 10 * 16_000]
    audio.encode(speech[:16_000])
    start = time.perf_counter()
    audio.encode(speech)
    results["audio_ms_per_s"] = (time.perf_counter() - start) / 10 * 1e3

    if args.probe:
        visual = OfflineVisualEncoder()
        tokens = visual.encode(faces["lm"], faces["bs"], faces["pose"], faces["crop"],
                               np.ones(len(faces["lm"]), bool))  # fmt: skip
        geo = OfflineVisualEncoder(use_appearance=False).encode(
            faces["lm"], faces["bs"], faces["pose"], None, np.ones(len(faces["lm"]), bool)
        )
        y, groups = faces["label"], faces["person"]
        results["faces_n"] = len(y)
        results["faces_macro_f1_blendshapes52"] = probe(faces["bs"], y, groups, "macro_f1")
        results["faces_macro_f1_tokens_no_hog"] = probe(geo.reshape(len(y), -1), y, groups,
                                                        "macro_f1")  # fmt: skip
        results["faces_macro_f1_tokens"] = probe(tokens.reshape(len(y), -1), y, groups, "macro_f1")

        import opensmile

        clips, emotion, speaker = speech_dataset()
        smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02)
        functionals = np.stack([smile.process_signal(c, 16_000).to_numpy()[0] for c in clips])
        start = time.perf_counter()
        encoded = [audio.encode(c) for c in clips]
        results["emodb_audio_ms_per_s"] = (
            (time.perf_counter() - start) / (sum(map(len, clips)) / 16_000) * 1e3
        )
        ours = np.stack([np.concatenate([f.mean(0), f.std(0)]) for f in encoded])
        results["emodb_uar_egemaps_functionals"] = probe(functionals, emotion, speaker, "uar")
        results["emodb_uar_ours_mean_std"] = probe(ours, emotion, speaker, "uar")

    width = max(map(len, results))
    for key, value in results.items():
        print(f"{key:<{width}}  {value:10.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2))
    tmp.replace(args.out)


if __name__ == "__main__":
    main()
