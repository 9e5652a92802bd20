"""Pillow's plugins for the formats a scan decodes, registered once on import: HEIF from pillow-heif (phone photos
are HEIC), AVIF Pillow's own where it was built with it (Pillow >= 11.3)."""
from PIL import features
from pillow_heif import register_heif_opener

register_heif_opener()
AVIF = ("AVIF",) if features.check("avif") else ()
BMFF_FORMATS = ("HEIF", *AVIF)  # ISO BMFF images: their EXIF and XMP are items of the file
