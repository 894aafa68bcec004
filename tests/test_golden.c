#include <criterion/criterion.h>
Test(golden, placeholder) {}
