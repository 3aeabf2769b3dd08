"""Before training starts: the generator is one spandrel reads back, and its training crops fit it.

- A spandrel network (``network_g.type`` in ``esrgan.archs.SPANDREL_GENERATORS``) whose checkpoint
  spandrel would rebuild as another network is refused, naming the argument spandrel assumes.
- The LR training crop (``gt_size / scale``) must be a size the network takes (a multiple of its
  window or unshuffle factor, at least its minimum): refused naming ``gt_size`` and the network.
- A pixel loss with a smallest image size (MS-SSIM's five scales) must get GT crops that large.
"""

from __future__ import annotations

from esrgan.archs.sizes import SizeRequirements
from esrgan.options.errors import OptionsError
from esrgan.options.sections import Options


def generator_sizes(opt: Options) -> SizeRequirements:
    """The generator's input size requirements; for a spandrel network, after the round-trip check."""
    from esrgan.archs import SPANDREL_GENERATORS, build_network, size_requirements

    net_g = opt.network_g
    assert net_g is not None
    if net_g.type in SPANDREL_GENERATORS:
        from esrgan.archs.spandrel_archs import RoundTripError, check_round_trip

        try:
            return check_round_trip(net_g.type, net_g.kwargs, opt.scale)
        except RoundTripError as exc:
            key = f"network_g.{exc.key}" if exc.key else "network_g"
            raise OptionsError(str(exc), key=key) from None
    if net_g.type == "RRDBNet":  # the one of ours with requirements (pixel-unshuffle at x1, x2); cheap to build
        return size_requirements(build_network(net_g.spec()))
    return SizeRequirements()


def _crops(opt: Options) -> list[tuple[str, int]]:
    """``(option key, GT crop size)`` of every training set that crops."""
    crops = []
    for phase, ds in opt.datasets_of("train").items():
        if ds.type == "RealESRGANDataset":
            crops.append(("gt_size", opt.real_esrgan.gt_size))  # resolved: the file's or the published recipe's
        elif getattr(ds, "gt_size", None):
            crops.append((f"datasets.{phase}.gt_size", ds.gt_size))
    return crops


def _check_loss_crops(opt: Options) -> None:
    from esrgan.losses import PIXEL_LOSSES
    from esrgan.losses.structural import MSSSIMLoss, min_ms_ssim_size

    pixel = opt.train.pixel_opt if opt.train is not None else None
    cls = PIXEL_LOSSES.get(pixel.type) if pixel is not None else None
    if cls is None or not issubclass(cls, MSSSIMLoss):
        return
    smallest = min_ms_ssim_size(int(pixel.kwargs.get("win_size", 11)))
    for key, gt_size in _crops(opt):
        if gt_size < smallest:
            raise OptionsError(
                f"{gt_size} is too small for {pixel.type}: its five scales of an 11-pixel window need GT crops "
                f"of at least {smallest} pixels",
                key=key.split(" ")[0],
            )


def check_generator(opt: Options) -> SizeRequirements:
    """Refuse, before anything is built for real, a generator spandrel cannot read back or crops it cannot take."""
    _check_loss_crops(opt)
    req = generator_sizes(opt)
    if req.none:
        return req
    assert opt.network_g is not None
    for key, gt_size in _crops(opt):
        lr = gt_size // opt.scale
        if not req.fits(lr, lr):
            s = opt.scale
            good = [g for g in range(s, 4 * max(gt_size, 64), s) if req.fits(g // s, g // s)]
            near = min(good, key=lambda g: (abs(g - gt_size), -g)) if good else None
            hint = f"; e.g. gt_size {near}" if near else ""
            raise OptionsError(
                f"{gt_size} gives {lr}x{lr} LR crops at x{opt.scale}, which {opt.network_g.type} cannot take: its "
                f"input must be {req.describe()}{hint}",
                key=key.split(" ")[0],
            )
    return req
