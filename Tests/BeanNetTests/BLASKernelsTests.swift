import Testing
@testable import BeanNet

@Suite struct BLASKernelsTests {
    @Test func coreNamesMapToTheirVectorLevel() {
        #expect(BLASKernels.level(ofCore: "Prescott") == .sse)
        #expect(BLASKernels.level(ofCore: "Nehalem") == .sse)
        #expect(BLASKernels.level(ofCore: "Sandybridge") == .avx)
        #expect(BLASKernels.level(ofCore: "Haswell") == .avx2)
        #expect(BLASKernels.level(ofCore: "Zen") == .avx2)
        #expect(BLASKernels.level(ofCore: "SkylakeX") == .avx512)
        #expect(BLASKernels.level(ofCore: "COOPERLAKE") == .avx512)
        #expect(BLASKernels.level(ofCore: "unknown") == .sse)
    }

    @Test func replacesOnlyTheSSEFallbackOnAWiderCPU() {
        #expect(BLASKernels.replacement(forCore: "Prescott", cpu: .avx512, operatorCore: nil) == "SkylakeX")
        #expect(BLASKernels.replacement(forCore: "Prescott", cpu: .avx2, operatorCore: nil) == "Haswell")
        #expect(BLASKernels.replacement(forCore: "Nehalem", cpu: .avx, operatorCore: nil) == "Sandybridge")
        // A CPU without AVX: OpenBLAS's SSE kernels are right.
        #expect(BLASKernels.replacement(forCore: "Prescott", cpu: .sse, operatorCore: nil) == nil)
        // A deliberate choice for a known CPU stays, even below the CPU's widest vectors (Zen on AVX-512).
        #expect(BLASKernels.replacement(forCore: "Zen", cpu: .avx512, operatorCore: nil) == nil)
        #expect(BLASKernels.replacement(forCore: "Haswell", cpu: .avx512, operatorCore: nil) == nil)
        // The operator's OPENBLAS_CORETYPE wins; an empty one counts as unset.
        #expect(BLASKernels.replacement(forCore: "Prescott", cpu: .avx512, operatorCore: "Prescott") == nil)
        #expect(BLASKernels.replacement(forCore: "Prescott", cpu: .avx512, operatorCore: "") == "SkylakeX")
    }
    // selectForThisCPU itself switches the process's kernels, which is unsafe while other tests call
    // BLAS in parallel; Tests/integration/34-blas-kernels.sh checks it in beanctl and beand.
}
