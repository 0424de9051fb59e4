"""Render scriptbox.svg into the PNG and ICO files committed beside it.

Run after editing the SVG (needs PyQt6 from requirements and ImageMagick):
    QT_QPA_PLATFORM=offscreen .venv/bin/python packaging/icons/render_icons.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ICO_SIZES = (16, 32, 48, 64, 128, 256)


def render_png(svg: Path, size: int, out: Path) -> None:
    from PyQt6.QtGui import QColor, QImage, QPainter
    from PyQt6.QtSvg import QSvgRenderer

    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(QColor(0, 0, 0, 0))
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    QSvgRenderer(str(svg)).render(painter)
    painter.end()
    if not image.save(str(out)):
        raise OSError(f"could not write {out}")


def main() -> int:
    from PyQt6.QtGui import QGuiApplication

    app = QGuiApplication(sys.argv)  # QPainter needs one; offscreen is enough
    svg = HERE / "scriptbox.svg"
    render_png(svg, 256, HERE / "scriptbox-256.png")
    with tempfile.TemporaryDirectory() as tmp:
        sizes = []
        for size in ICO_SIZES:
            png = Path(tmp) / f"{size}.png"
            render_png(svg, size, png)
            sizes.append(str(png))
        subprocess.run(["convert", *sizes, str(HERE / "scriptbox.ico")], check=True)
    del app
    return 0


if __name__ == "__main__":
    sys.exit(main())
