/* neardup CLI — the review page's script and style sheet, embedded into the
 * binary from src/cli/report/ by the assembler's .incbin (the Makefile makes
 * this object depend on them). They stay plain .js and .css files, edited
 * and checked as such, with no generator and no escaping into C strings.
 * Each ends with a NUL byte: they are C strings. */
__asm__(".section .rodata\n"
	".global nd_review_js\n"
	".type nd_review_js, @object\n"
	"nd_review_js:\n"
	".incbin \"src/cli/report/review.js\"\n"
	".byte 0\n"
	".size nd_review_js, . - nd_review_js\n"
	".global nd_review_css\n"
	".type nd_review_css, @object\n"
	"nd_review_css:\n"
	".incbin \"src/cli/report/review.css\"\n"
	".byte 0\n"
	".size nd_review_css, . - nd_review_css\n"
	".previous\n");
