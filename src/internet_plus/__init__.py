"""InterNet+ and InterNet: 3-D hand pose from a single RGB image (Lightning + Hydra)."""

from internet_plus.resolvers import register_resolvers

register_resolvers()
