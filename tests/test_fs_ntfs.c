#include <criterion/criterion.h>

Test(fs_ntfs, placeholder) { cr_skip_test("not written yet"); }
