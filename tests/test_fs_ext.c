#include <criterion/criterion.h>

Test(fs_ext, placeholder) { cr_skip_test("not written yet"); }
