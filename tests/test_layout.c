#include <criterion/criterion.h>

Test(layout, placeholder) { cr_skip_test("not written yet"); }
