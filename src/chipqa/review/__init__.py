"""The review loop without a screen: the project (a dataset and its side files), the
ranked session, the chip loader, label fixes and the cleaned export. The blocklist these
write to is :mod:`chipqa.blocklist`."""

from chipqa.review.loader import ChipLoader, ChipView
from chipqa.review.project import ReviewProject
from chipqa.review.session import ReviewSession, fraction_text

__all__ = [
    "ChipLoader",
    "ChipView",
    "ReviewProject",
    "ReviewSession",
    "fraction_text",
]
