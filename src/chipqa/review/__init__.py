"""The review loop without a screen: the project (a dataset and its side files), the
ranked session, the chip loader, the blocklist."""

from chipqa.review.blocklist import BlocklistError, BlocklistStore, Decision
from chipqa.review.loader import ChipLoader, ChipView
from chipqa.review.project import ReviewProject
from chipqa.review.session import ReviewSession, fraction_text

__all__ = [
    "BlocklistError",
    "BlocklistStore",
    "ChipLoader",
    "ChipView",
    "Decision",
    "ReviewProject",
    "ReviewSession",
    "fraction_text",
]
