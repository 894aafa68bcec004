#include <criterion/criterion.h>

Test(fs_exfat, placeholder) { cr_skip_test("not written yet"); }
