"""Device profiles: one YAML file per sensor model, validated once at load."""

from device_profiles.loader import BUNDLED_DIR, ProfileError, load_profile, load_profiles
from device_profiles.schema import Measure, Profile, Rule
from device_profiles.vocabulary import QUANTITIES, quantity_spec

__all__ = [
    "BUNDLED_DIR",
    "QUANTITIES",
    "Measure",
    "Profile",
    "ProfileError",
    "Rule",
    "load_profile",
    "load_profiles",
    "quantity_spec",
]
