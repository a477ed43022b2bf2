/* OpenMP shim: lets the Cython sources ask for the OpenMP runtime's thread
 * count whether or not the extension was compiled with OpenMP (the serial
 * build has no <omp.h>). */
#ifndef CSOFTMAX_OMP_SHIM_H
#define CSOFTMAX_OMP_SHIM_H

#ifdef _OPENMP
#include <omp.h>
#define CSM_OPENMP_ENABLED 1
static inline int csm_omp_max_threads(void) { return omp_get_max_threads(); }
static inline int csm_omp_thread_num(void) { return omp_get_thread_num(); }
#else
#define CSM_OPENMP_ENABLED 0
static inline int csm_omp_max_threads(void) { return 1; }
static inline int csm_omp_thread_num(void) { return 0; }
#endif

#endif
