/*
 * The CUnit runner: one suite per module, registered by each test file's
 * test_<module>_register(). Exits non-zero when any assertion fails.
 */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>

#include <vips/vips.h>

int test_value_lexer_register(void);
int test_storage_local_register(void);
int test_geometry_register(void);
int test_loader_register(void);
int test_params_register(void);
int test_config_register(void);
int test_netguard_register(void);
int test_jobstore_register(void);
int test_runner_register(void);
int test_optimize_register(void);
int test_reducev_register(void);
int test_encode_register(void);
int test_registry_register(void);
int test_backend_vips_register(void);

int
main(int argc, char **argv)
{
    (void)argc;
    if (VIPS_INIT(argv[0]) != 0) {
        fprintf(stderr, "cannot initialise libvips\n");
        return 1;
    }
    if (CU_initialize_registry() != CUE_SUCCESS) {
        return 1;
    }
    int (*regs[])(void) = {
        test_value_lexer_register, test_storage_local_register,
        test_geometry_register,    test_loader_register,
        test_params_register,      test_config_register,
        test_netguard_register,    test_jobstore_register,
        test_reducev_register,     test_encode_register,
        test_registry_register,    test_runner_register,
        test_optimize_register,    test_backend_vips_register};
    for (size_t i = 0; i < sizeof regs / sizeof regs[0]; i++) {
        if (regs[i]() != 0) {
            fprintf(stderr, "cannot register suite %zu\n", i);
            CU_cleanup_registry();
            return 1;
        }
    }
    CU_basic_set_mode(CU_BRM_NORMAL);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures();
    unsigned tests_failed = CU_get_number_of_tests_failed();
    unsigned tests_run = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    vips_shutdown();
    printf("\nunit: %u passed, %u failed\n", tests_run - tests_failed,
           tests_failed);
    return failed == 0 && tests_failed == 0 ? 0 : 1;
}
