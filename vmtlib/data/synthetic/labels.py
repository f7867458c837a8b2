"""The label vocabulary of the synthetic scenes: VOC class ids (semseg), the solid
behind each id, and the human-part classes, as in the PASCAL multi-task benchmark."""

from __future__ import annotations

VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car",
    "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
    "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
"""VOC class order: semseg ids 0..20."""

PERSON = 15
SHAPE_CLASSES: dict[str, int] = {
    "torus": 2, "ellipsoid": 3, "pyramid": 4, "cylinder": 5, "capsule": 7,
    "sphere": 8, "box": 9, "cone": 16, "slab": 20,
}
"""Solid -> VOC id (the person figure is VOC id 15)."""

HUMAN_PARTS: tuple[str, ...] = (
    "background", "head", "torso", "upper arm", "lower arm", "upper leg", "lower leg",
)
"""The 7 human-part classes of the PASCAL multi-task benchmark."""

IGNORE = 255
