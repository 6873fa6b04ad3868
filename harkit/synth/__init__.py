"""Built-in synthetic action datasets, rendered as real video files (``harkit data synth``,
the demo, tests and benchmarks).

Two kinds of actor (``SynthConfig.kind``):

* ``shapes``: coloured shapes move, grow, rotate, fade, blink or shake over varied
  backgrounds (small and fast; pixel descriptors such as ``tiny_image`` suffice).
* ``people``: articulated figures (head, torso, two-segment arms and legs; clothes, skin,
  size, place and tempo differ per actor) raise and lower their arms, squat, bend, wave or
  clap over textured backgrounds, so that ImageNet features describe their pose.

Most classes come in pairs that differ only in time order: the second class of a pair is the
exact frame reversal of a clip drawn from the first class's distribution, so every single
frame has the same distribution in both classes and a model that ignores frame order is at
chance within a pair. The order-free classes (``blink``/``shake``, ``wave``/``clap``) can be
told apart without frame order.

Layout written by :func:`render_dataset`::

    out/<class>/<class>_a<actor:02d>_c<clip:02d>.mp4
    out/manifest.csv            path,label,split,group  (paths relative to out/)
    out/synth_config.json       the config that rendered the folder

Modules: :mod:`~harkit.synth.config` (:class:`SynthConfig` and the class names),
:mod:`~harkit.synth.shapes` and :mod:`~harkit.synth.people` (one per kind),
:mod:`~harkit.synth.scene` (backgrounds, noise and drawing both kinds share),
:mod:`~harkit.synth.video` (:func:`write_video`, also used for any frames harkit writes) and
:mod:`~harkit.synth.dataset` (:func:`render_clip`, :func:`render_dataset`).
"""

from typing import TYPE_CHECKING

from harkit._lazy import lazy_exports

if TYPE_CHECKING:  # the lazy names, for type checkers and IDEs
    from harkit.synth.config import (
        BACKGROUNDS,
        ORDER_FREE_CLASSES,
        PEOPLE_CLASSES,
        PEOPLE_ORDER_FREE_CLASSES,
        PEOPLE_TIME_ORDER_PAIRS,
        SYNTH_CLASSES,
        TIME_ORDER_PAIRS,
        SynthConfig,
    )
    from harkit.synth.dataset import clip_filename, render_clip, render_dataset
    from harkit.synth.people import FigureStyle, figure_style
    from harkit.synth.shapes import SHAPES, ActorStyle, actor_style
    from harkit.synth.video import resolve_encoder, write_video

_EXPORTS = {
    "BACKGROUNDS": "harkit.synth.config",
    "ORDER_FREE_CLASSES": "harkit.synth.config",
    "PEOPLE_CLASSES": "harkit.synth.config",
    "PEOPLE_ORDER_FREE_CLASSES": "harkit.synth.config",
    "PEOPLE_TIME_ORDER_PAIRS": "harkit.synth.config",
    "SHAPES": "harkit.synth.shapes",
    "SYNTH_CLASSES": "harkit.synth.config",
    "TIME_ORDER_PAIRS": "harkit.synth.config",
    "ActorStyle": "harkit.synth.shapes",
    "FigureStyle": "harkit.synth.people",
    "SynthConfig": "harkit.synth.config",
    "actor_style": "harkit.synth.shapes",
    "clip_filename": "harkit.synth.dataset",
    "figure_style": "harkit.synth.people",
    "render_clip": "harkit.synth.dataset",
    "render_dataset": "harkit.synth.dataset",
    "resolve_encoder": "harkit.synth.video",
    "write_video": "harkit.synth.video",
}

__all__ = [
    "BACKGROUNDS",
    "ORDER_FREE_CLASSES",
    "PEOPLE_CLASSES",
    "PEOPLE_ORDER_FREE_CLASSES",
    "PEOPLE_TIME_ORDER_PAIRS",
    "SHAPES",
    "SYNTH_CLASSES",
    "TIME_ORDER_PAIRS",
    "ActorStyle",
    "FigureStyle",
    "SynthConfig",
    "actor_style",
    "clip_filename",
    "figure_style",
    "render_clip",
    "render_dataset",
    "resolve_encoder",
    "write_video",
]

__getattr__ = lazy_exports(__name__, _EXPORTS)
