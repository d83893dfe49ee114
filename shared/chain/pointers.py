"""The image pointers: one ledger state document per image (``pointers/image-<name>``) naming the image our
latest successful build of it pushed (by digest). ``on_build_status`` writes them; training reads the
trainer's, an approval the server's. A module of its own so that readers do not import the build handling
(and ``deploy plan`` does not grant them Cloud Build roles: it reads what a function's path imports)."""

from __future__ import annotations

#: The ledger collection of the image pointers.
POINTERS = "pointers"


def pointer_id(image_name: str) -> str:
    """The pointer document of the image ``image_name`` (a name of ``spec.push.images``)."""
    return f"image-{image_name}"
