"""What the synthetic datasets render: :class:`SynthConfig` and each kind's class names."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from harkit.config import StrictModel

__all__ = [
    "BACKGROUNDS",
    "KINDS",
    "ORDER_FREE_CLASSES",
    "PEOPLE_CLASSES",
    "PEOPLE_ORDER_FREE_CLASSES",
    "PEOPLE_TIME_ORDER_PAIRS",
    "REVERSED_OF",
    "SYNTH_CLASSES",
    "TIME_ORDER_PAIRS",
    "SynthConfig",
]

#: (forward class, its time reversal). The second is rendered as the reversed first.
TIME_ORDER_PAIRS: list[tuple[str, str]] = [
    ("move_right", "move_left"),
    ("move_down", "move_up"),
    ("grow", "shrink"),
    ("rotate_cw", "rotate_ccw"),
    ("fade_in", "fade_out"),
]
#: Classes recognisable without frame order (a bag of frames suffices).
ORDER_FREE_CLASSES: tuple[str, ...] = ("blink", "shake")
#: All class names, in label-index order.
SYNTH_CLASSES: tuple[str, ...] = (
    *(name for pair in TIME_ORDER_PAIRS for name in pair),
    *ORDER_FREE_CLASSES,
)
#: The ``people`` kind: (forward class, its time reversal), as for the shapes.
PEOPLE_TIME_ORDER_PAIRS: list[tuple[str, str]] = [
    ("raise_arms", "lower_arms"),
    ("squat_down", "stand_up"),
    ("bend_down", "straighten_up"),
]
#: ``people`` classes recognisable from single frames (periodic, random phase).
PEOPLE_ORDER_FREE_CLASSES: tuple[str, ...] = ("wave", "clap")
#: All ``people`` class names, in label-index order.
PEOPLE_CLASSES: tuple[str, ...] = (
    *(name for pair in PEOPLE_TIME_ORDER_PAIRS for name in pair),
    *PEOPLE_ORDER_FREE_CLASSES,
)
BACKGROUNDS: tuple[str, ...] = ("solid", "gradient", "texture")

#: The forward class each time-reversed class is rendered from.
REVERSED_OF = {
    backward: forward for forward, backward in (*TIME_ORDER_PAIRS, *PEOPLE_TIME_ORDER_PAIRS)
}
#: The classes of each kind, in label-index order.
KINDS = {"shapes": SYNTH_CLASSES, "people": PEOPLE_CLASSES}

BackgroundKind = Literal["solid", "gradient", "texture"]
ActorKind = Literal["shapes", "people"]


class SynthConfig(StrictModel):
    """What :func:`render_dataset` renders. Defaults make a small dataset in a few seconds."""

    # before ``classes``: its validator reads the kind
    kind: ActorKind = Field(default="shapes", description="shapes or people (stick figures)")
    classes: list[str] | None = Field(
        default=None, description="subset of the kind's classes (in that order); None = all"
    )
    num_actors: int = Field(default=6, ge=2, le=999, description="actors = groups, a01..aNN")
    clips_per_actor: int = Field(default=2, ge=1, le=1000)
    num_frames: int = Field(default=32, ge=4, le=10_000)
    size: int = Field(default=96, ge=32, le=1024, description="square frame side, even")
    fps: int = Field(default=15, ge=1, le=240)
    seed: int = Field(default=0, ge=0)
    test_actors: int = Field(default=2, ge=0, description="the last N actors form the test split")
    codec: Literal["h264", "mpeg4"] = "h264"
    container: Literal["mp4", "avi"] = "mp4"
    bframes: int = Field(default=2, ge=0, le=16, description="H.264 B-frames between P-frames")
    crf: int = Field(default=20, ge=0, le=51, description="H.264 quality (lower = better)")
    noise_std: float = Field(default=4.0, ge=0.0, le=64.0, description="per-pixel noise, 0-255")
    backgrounds: list[BackgroundKind] = Field(
        default_factory=lambda: list(BACKGROUNDS), min_length=1
    )
    shared_scene: bool = Field(
        default=False,
        description="one background for the whole dataset (one room, lighting varies per "
        "clip), as when every actor is filmed in the same place",
    )

    @field_validator("size")
    @classmethod
    def _even_size(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"size must be even for yuv420p video, got {value}")
        return value

    @field_validator("classes")
    @classmethod
    def _known_classes(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if value is None:
            return None
        known = KINDS[info.data.get("kind", "shapes")]
        unknown = [name for name in value if name not in known]
        if unknown:
            raise ValueError(f"unknown classes {unknown}; choose from {list(known)}")
        if len(set(value)) != len(value):
            raise ValueError("classes must not repeat")
        if len(value) < 2:
            raise ValueError("need at least 2 classes")
        return [name for name in known if name in value]

    @model_validator(mode="after")
    def _one_train_actor(self) -> SynthConfig:
        if self.test_actors >= self.num_actors:
            raise ValueError(
                f"test_actors ({self.test_actors}) must be below num_actors ({self.num_actors})"
            )
        return self

    @model_validator(mode="after")
    def _classes_of_kind(self) -> SynthConfig:
        # a kind set after the classes (assignment, model_copy) must still own them
        known = KINDS[self.kind]
        if self.classes is not None and any(name not in known for name in self.classes):
            raise ValueError(f"classes {self.classes} are not all {self.kind} classes")
        return self

    @property
    def class_names(self) -> list[str]:
        """The classes this config renders, in label order."""
        return list(self.classes) if self.classes is not None else list(KINDS[self.kind])

    @property
    def time_order_pairs(self) -> list[tuple[str, str]]:
        """The (forward, reversed) pairs of this kind that are both rendered."""
        pairs = TIME_ORDER_PAIRS if self.kind == "shapes" else PEOPLE_TIME_ORDER_PAIRS
        names = set(self.class_names)
        return [pair for pair in pairs if set(pair) <= names]

    @property
    def test_actor_ids(self) -> list[int]:
        """1-based ids of the held-out actors."""
        return list(range(self.num_actors - self.test_actors + 1, self.num_actors + 1))
