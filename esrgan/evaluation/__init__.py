"""Evaluation and research tools: the tester (PSNR/SSIM tables, comparison pictures) and network interpolation.

Public functions are resolved on first use, so ``import esrgan.evaluation`` stays cheap:

- ``run_tests(models, test_sets, scale, name, ...) -> TestReport``  (``esrgan test``)
- ``make_test_set(name, hr_dir, lr_dir=None, filename_tmpl=None) -> TestSet``
- ``interpolate_state_dicts(sd_psnr, sd_gan, alpha)``, ``interpolate_checkpoints(psnr, gan, alpha, out)``
- ``run_sweep(psnr, gan, alphas, test_sets, scale, name, ...) -> SweepReport``  (``esrgan interp --sweep``)
"""

from __future__ import annotations

from esrgan.utils.lazy import lazy_getattr

_LAZY = {
    "run_tests": "esrgan.evaluation.tester",
    "evaluate": "esrgan.evaluation.tester",
    "score": "esrgan.evaluation.tester",
    "TestReport": "esrgan.evaluation.tester",
    "make_test_set": "esrgan.evaluation.testsets",
    "TestSet": "esrgan.evaluation.testsets",
    "build_models": "esrgan.evaluation.tested_models",
    "interpolate_state_dicts": "esrgan.evaluation.interpolation",
    "interpolate_checkpoints": "esrgan.evaluation.interpolation",
    "load_pair": "esrgan.evaluation.interpolation",
    "run_sweep": "esrgan.evaluation.sweep",
    "SweepReport": "esrgan.evaluation.sweep",
}


__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = list(_LAZY)
