"""Every table model of the appliance, imported in one place.

Alembic's environment and the schema-drift test need the complete metadata; each capability
keeps its models in its own package and is listed here.
"""

from appliance.store.schema import Base, Blob, Installation

__all__ = ["Base", "Blob", "Installation"]
