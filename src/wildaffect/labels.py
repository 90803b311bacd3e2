"""The ABAW label spaces, defined once.

Every other module takes the names, orders and invalid markers from here; nothing else
spells ``AU12`` or ``-5`` as a literal.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Task(str, Enum):
    """The three ABAW per-frame tasks."""

    AU = "AU"
    EXPR = "EXPR"
    VA = "VA"


#: The 12 Action Units scored by the ABAW AU challenge, in the annotation-file order.
AU_NAMES: tuple[str, ...] = (
    "AU1", "AU2", "AU4", "AU6", "AU7", "AU10",
    "AU12", "AU15", "AU23", "AU24", "AU25", "AU26",
)
#: The 8 ABAW expression classes; the index is the class id in the annotation files.
EXPR_NAMES: tuple[str, ...] = (
    "Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Other",
)
#: The two affect dimensions, in annotation-file order.
VA_NAMES: tuple[str, ...] = ("valence", "arousal")

#: Valid range of valence and arousal (inclusive).
VA_MIN, VA_MAX = -1.0, 1.0

#: Invalid-frame markers in the annotation files.
AU_INVALID = -1
EXPR_INVALID = -1
VA_INVALID = -5.0

#: Valid AU values: inactive / active.
AU_VALUES = (0, 1)


@dataclass(frozen=True)
class TaskSpec:
    """Everything format-related about one task."""

    task: Task
    columns: tuple[str, ...]
    invalid: float
    challenge_dir: str  # 6th ABAW on: <root>/<challenge_dir>/{Train_Set,Validation_Set}
    legacy_dir: str  # older:       <root>/annotations/<legacy_dir>/{Train_Set,Validation_Set}

    @property
    def header(self) -> str:
        return ",".join(self.columns)


TASK_SPECS: dict[Task, TaskSpec] = {
    Task.AU: TaskSpec(Task.AU, AU_NAMES, AU_INVALID, "AU_Detection_Challenge", "AU_Set"),
    Task.EXPR: TaskSpec(
        Task.EXPR, EXPR_NAMES, EXPR_INVALID, "EXPR_Recognition_Challenge", "EXPR_Set"
    ),
    Task.VA: TaskSpec(Task.VA, VA_NAMES, VA_INVALID, "VA_Estimation_Challenge", "VA_Set"),
}

#: The two annotated splits and the folder that holds the aligned face crops.
SPLITS: tuple[str, ...] = ("Train_Set", "Validation_Set")
CROPPED_DIR = "cropped_aligned"
#: Frame image names: line i (1-based, after the header) is frame f"{i:05d}.jpg".
FRAME_NAME_FORMAT = "{:05d}.jpg"
#: Output names per task (the column names of predictions and checkpoints).
LABEL_NAMES: dict[str, list[str]] = {
    Task.AU.value: list(AU_NAMES), Task.EXPR.value: list(EXPR_NAMES), Task.VA.value: list(VA_NAMES),
}
#: Suffixes of videos with two annotated people; both share the base video's audio.
SPEAKER_SUFFIXES: tuple[str, ...] = ("_left", "_right")
