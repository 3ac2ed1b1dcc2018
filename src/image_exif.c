/* neardup — EXIF orientation, read with libexif (Debian's libexif-dev)
 * rather than a hand-written TIFF parser: the EXIF block is untrusted input
 * and libexif is a maintained, fuzzed parser for exactly this. */
#include "image_impl.h"

#include <libexif/exif-data.h>

int nd__image_exif_orientation(const uint8_t *data, size_t len)
{
	ExifData *ed;
	ExifEntry *e;
	int o = 1;
	if (len < 6 || len > 0xffffffffu)
		return 1;
	ed = exif_data_new();
	if (!ed)
		return 1;
	/* Read as is: do not let libexif add or "fix" entries. */
	exif_data_unset_option(ed, EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
	exif_data_load_data(ed, data, (unsigned int)len);
	e = exif_content_get_entry(ed->ifd[EXIF_IFD_0], EXIF_TAG_ORIENTATION);
	if (e && e->format == EXIF_FORMAT_SHORT && e->components >= 1 && e->data && e->size >= 2)
		o = exif_get_short(e->data, exif_data_get_byte_order(ed));
	exif_data_unref(ed);
	return (o >= 1 && o <= 8) ? o : 1;
}
