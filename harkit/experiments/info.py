"""``harkit info``: a recipe's summary and its parameters per module, built offline."""

from __future__ import annotations

from harkit.models.networks import count_parameters, parameter_table
from harkit.models.recipe import Recipe
from harkit.train.run import offline_recipe

__all__ = ["recipe_info"]


def _fmt(n: int) -> str:
    return f"{n:,}"


def recipe_info(recipe: Recipe, num_classes: int = 101) -> str:
    """Recipe summary plus a per-module parameter table with totals and trainable counts.

    Backbone weights are forced to ``none`` first: counting parameters needs no download.
    """
    from harkit.models.builder import build_model, feature_dims

    if num_classes < 2:
        from harkit.config import ConfigError

        raise ConfigError(f"--num-classes must be >= 2, got {num_classes}")
    model = build_model(offline_recipe(recipe), num_classes)
    inp, optim = recipe.input, recipe.optim
    lines = [f"recipe: {recipe.name} ({recipe.mode})"]
    if recipe.paper:
        lines.append(f"paper: {recipe.paper}")
    lines.append(f"sampling: {inp.sampling.describe()}")
    if recipe.mode == "features":
        dims = feature_dims(recipe)
        for source, dim in zip(inp.features, dims, strict=True):
            layer = f" layer {source.layer}" if source.layer else ""
            lines.append(
                f"feature: {source.backbone}{layer} ({source.stream}, weights {source.weights}) "
                f"-> {dim}-d, frozen, cached"
            )
        lines.append(f"head input: {sum(dims)}-d per step")
    else:
        net = recipe.network
        assert net is not None
        lines.append(f"network: {net.model_dump(mode='json')}")
    if recipe.head is not None:
        lines.append(f"head: {recipe.head.model_dump(mode='json')}")
    lines.append(
        f"optim: {optim.optimizer} lr {optim.lr:g} wd {optim.weight_decay:g}, "
        f"scheduler {optim.scheduler}, {optim.epochs} epochs, batch {optim.batch_size}, "
        f"precision {optim.precision}"
    )
    if recipe.reported:
        lines.append("reported: " + ", ".join(f"{k} {v:g}" for k, v in recipe.reported.items()))
    rows = parameter_table(model, include_empty=False)
    width = max([len(name) for name, _, _ in rows] + [6])
    type_width = max([len(kind) for _, kind, _ in rows] + [4])
    lines += [
        "",
        f"parameters for {num_classes} classes:",
        f"{'module':<{width}}  {'type':<{type_width}}  {'params':>12}",
    ]
    for name, kind, count in rows:
        lines.append(f"{name:<{width}}  {kind:<{type_width}}  {_fmt(count):>12}")
    total = count_parameters(model)
    trainable = count_parameters(model, trainable_only=True)
    lines += [
        f"{'total':<{width}}  {'':<{type_width}}  {_fmt(total):>12}",
        f"{'trainable':<{width}}  {'':<{type_width}}  {_fmt(trainable):>12}",
        f"{'frozen':<{width}}  {'':<{type_width}}  {_fmt(total - trainable):>12}",
    ]
    return "\n".join(lines)
