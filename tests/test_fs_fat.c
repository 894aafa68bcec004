#include <criterion/criterion.h>

Test(fs_fat, placeholder) { cr_skip_test("not written yet"); }
