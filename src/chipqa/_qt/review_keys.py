"""What each review key does, in single-chip review and in the gallery.

Every key, button and napari command of the review runs an action by name (see
:data:`chipqa._qt.keys.KEY_ACTIONS`); :func:`review_actions` says which child of the
panel does it. An action does what the view on the canvas asks for: ``k`` keeps the
chip in single-chip review, and keeps the undecided chips of the page and saves it in
the gallery.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from chipqa._qt.keys import dims_step
from chipqa.blocklist.store import REASONS

if TYPE_CHECKING:
    import napari

    from chipqa._qt.decision_bar import DecisionBar
    from chipqa._qt.filter_bar import FilterBar
    from chipqa._qt.fix_actions import FixActions
    from chipqa._qt.gallery_actions import GalleryActions
    from chipqa._qt.review_canvas import ReviewCanvas
    from chipqa.review.controller import ReviewController

Action = Callable[[], object]


def review_actions(
    viewer: napari.Viewer,
    controller: ReviewController,
    canvas: ReviewCanvas,
    pages: GalleryActions,
    decide: DecisionBar,
    fixes: FixActions,
    filters: FilterBar,
) -> dict[str, Action]:
    """The review's actions by name."""
    gallery = canvas.gallery

    def either(in_gallery: Action, single: Action) -> Action:
        return lambda: in_gallery() if canvas.in_gallery else single()

    def step(delta: int) -> None:
        controller.step(delta)

    def arrow(dx: int) -> Action:
        def act() -> None:
            if dims_step(viewer, dx):  # a stack's slider first
                return
            if canvas.in_gallery:
                gallery.move(dx, 0)
            else:
                step(dx)

        return act

    actions: dict[str, Action] = {
        "next": either(lambda: pages.turn_page(+1), lambda: step(+1)),
        "previous": either(lambda: pages.turn_page(-1), lambda: step(-1)),
        "right": arrow(+1),
        "left": arrow(-1),
        "up": either(lambda: gallery.move(0, -1), lambda: None),
        "down": either(lambda: gallery.move(0, 1), lambda: None),
        "keep": either(
            lambda: pages.save_page(keep_rest=True, turn=+1), lambda: decide.decide("keep")
        ),
        "block": either(lambda: pages.toggle("block"), lambda: decide.decide("block")),
        "unsure": either(lambda: pages.toggle("unsure", ""), lambda: decide.decide("unsure")),
        "undo": decide.undo,
        "next_undecided": decide.next_undecided,
        "open": canvas.toggle_gallery,
        "toggle_layers": canvas.toggle_layers,
        "stretch": filters.next_stretch,
        "accept_model": fixes.accept_model,
        "paint": fixes.start_painting,
        "save_paint": lambda: fixes.finish(save=True),
        "cancel_paint": lambda: fixes.finish(save=False),
        "help": canvas.toggle_help,
    }
    for i, reason in enumerate(REASONS, start=1):  # the numbered keys: block_1 … 6
        actions[f"block_{i}"] = either(
            lambda r=reason: pages.toggle("block", r),
            lambda r=reason: decide.decide("block", r),
        )
    return actions
