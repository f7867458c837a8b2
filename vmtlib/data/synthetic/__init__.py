"""Synthetic multi-task scenes: all four PASCAL-Context labels, rendered on the fly.

The CPU course cannot download PASCAL-Context, so it trains on scenes that this
module draws procedurally. Every sample carries the four labels of the
benchmark in exactly the PASCAL conventions of ``pascal_context_format.md``,
so the same model, losses and metrics run on both.

What a scene contains
---------------------
* **Background** (semseg 0): a wall (or, in 30% of scenes, a sky) above a
  random horizon and, in 75% of scenes, a floor below it. Wall and floor are
  planes with true normals (the camera looks down at the floor with a random
  pitch and sees the wall with a random yaw) and carry a texture of two
  *muted* colours (smooth noise, stripes or a checker at a random scale and
  angle). The sky has no normal (invalid, all-zero), like the PASCAL classes
  outside the NYUv2 list. A few flat *decals* (discs, bars) are painted on the
  background: they have colour and shape but no relief, so only shading tells
  them apart from objects (0-4 per scene, half of them as vivid as salient objects).
* **Objects**: 2-6 shaded solids, each drawn with an exact normal field, and
  0-2 person figures. The semseg ids are VOC ids (21 channels):

  ========  =======================  ============================================
  VOC id    VOC name                 solid
  ========  =======================  ============================================
  2         bicycle                  torus facing the camera (a wheel)
  3         bird                     elongated ellipsoid (aspect 1.8-2.8)
  4         boat                     square pyramid, random 3-D rotation
  5         bottle                   upright cylinder seen from above, with its cap
  7         car                      capsule lying across the image
  8         cat                      sphere
  9         chair                    box, random 3-D rotation (2-3 faces visible)
  15        person                   figure: head, torso, upper/lower arms and legs
  16        pottedplant              upright cone
  20        tvmonitor                thin slab facing the camera with a dark screen
  ========  =======================  ============================================

  Colours are drawn at random per object, independently of the class, so a
  colour shortcut fails: classes differ in silhouette and shading only
  (sphere versus ellipsoid by aspect, box versus slab by thickness and the
  screen, capsule versus person limbs by context). Sizes are log-uniform over
  a 7x range, objects leave the frame, and the painter's algorithm (far to
  near, larger objects tend to be nearer) makes them occlude each other, so
  both small details and image-wide context matter.
* **Lighting**: one directional light (random direction in front of the
  scene, from above more often than not), Lambert shading
  ``albedo * (ambient + diffuse * max(0, n . l))`` with random ambient,
  diffuse strength and a colour cast, plus sensor noise. Because the
  shading is a function of the normal, the normals are recoverable from the
  image. Albedo textures multiply the colour, they never change the normal.
  The sensor noise is uniform with a random standard deviation (0.003-0.03).

The labels
----------
* ``semseg``: int64 HxW, the VOC id of the visible object, 0 for background
  (walls, floor, sky and decals). No 255 is produced (hard edges, no void band).
* ``human_parts``: int64 HxW, 7 classes as in PASCAL: 0 background, 1 head,
  2 torso, 3 upper arm, 4 lower arm, 5 upper leg, 6 lower leg. In an image
  where a person is visible, every non-person pixel is 0; in an image with no
  visible person pixel the whole map is 255 (ignored), as in PASCAL.
* ``sal``: int64 HxW in {0, 1}. **Rule: a solid object is salient iff its
  base colour is vivid** (HSV saturation >= 0.7 and value >= 0.7), while
  non-salient objects and the background are muted (saturation <= 0.3). A
  person is salient iff its clothes are vivid, and then the whole figure (head
  included) is salient. Vivid *decals* are flat paint on the wall, not objects,
  and are not salient: colour alone does not solve the task, the relief
  (shading) has to confirm an object. The rule is visible in the image: shading
  scales the three channels together and keeps the saturation. Each object is
  vivid with probability 0.45, so some images have an empty saliency mask.
* ``normals``: float32 3xHxW unit vectors in the PASCAL ``normals_distill``
  convention used by the MTI-Net / ASTMT code family: **x to the right,
  y down (along the image rows), z towards the camera**; a surface facing the
  camera is (0, 0, 1), PNG-encoded (128, 128, 255). Invalid pixels (sky) are
  all-zero.
* ``image``: float32 3xHxW in [0, 1]. ``meta``: ``{"id": "synthetic-<seed>-<index>",
  "seed": seed, "index": index}``.

Determinism: sample ``index`` of seed ``seed`` is drawn from
``np.random.default_rng([seed, index])``, so it is the same in every process,
DataLoader worker and order. The scene is described in resolution-free units
(the shorter image side spans [-1, 1]) and only the sensor noise depends on the
resolution, so the same (seed, index) at 64 or 256 pixels shows the same scene.

Speed: everything is vectorised numpy in float32 on bounding-box crops of each
object; ``benchmarks/bench_synthetic.py`` measures the samples per second.

The renderer, one module per job (``labels``: the class ids; ``textures``: colours
and patterns; ``solids``: the closed-form solids; ``canvas``: painting solids and
person figures; ``scene``: :func:`render_scene`, which composes a scene in one fixed
order of random draws; ``dataset``: :class:`SyntheticScenes`). Render checksums of
a few scenes are pinned in ``tests/test_synthetic.py``.
"""

from vmtlib.data.synthetic.dataset import SyntheticScenes
from vmtlib.data.synthetic.labels import HUMAN_PARTS, IGNORE, PERSON, SHAPE_CLASSES, VOC_CLASSES
from vmtlib.data.synthetic.scene import SceneArrays, SceneConfig, render_scene

__all__ = [
    "HUMAN_PARTS",
    "IGNORE",
    "PERSON",
    "SHAPE_CLASSES",
    "VOC_CLASSES",
    "SceneArrays",
    "SceneConfig",
    "SyntheticScenes",
    "render_scene",
]
