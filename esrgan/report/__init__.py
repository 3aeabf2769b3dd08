"""HTML reports of test runs and interpolation sweeps: one self-contained ``report.html`` per experiment.

The page reads no network resource: its styles, scripts and data are inline; the images it shows
are the experiment's own files, referenced by relative paths (so the folder can be moved or zipped).

    write_test_report(out_dir)    after ``esrgan test``     (reads results.json and <set>/<model>/*.png)
    write_sweep_report(out_dir)   after ``esrgan interp --sweep``  (reads sweep.json and <set>/alpha*/)
    gallery.write_degradation_gallery(pairs, out_dir, ...)  the pairs the trainer trains on (prepare degrade --preview)
"""

from esrgan.report.pages import metric_direction, write_sweep_report, write_test_report

__all__ = ["metric_direction", "write_sweep_report", "write_test_report"]
