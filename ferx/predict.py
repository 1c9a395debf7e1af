"""Old home of `ferx-predict`: kept so that a console script installed from an older
checkout still starts (the code is ferx/deploy/predict.py)."""

from ferx.deploy.predict import main

__all__ = ["main"]
