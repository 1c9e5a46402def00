#if canImport(Glibc)
import Glibc
#endif
import CBLAS

/// Which OpenBLAS kernels this process runs, and the one correction beand makes to OpenBLAS's own
/// choice: when OpenBLAS does not recognise the CPU it falls back to its SSE3 (Prescott) kernels,
/// even on a core with AVX-512. On the project's Intel Xeon (family 6 model 207, unknown to Debian
/// 12's OpenBLAS 0.3.21) that ran the encoder at 0.6 times and training at half the speed of the
/// kernels the CPU can run. An operator's `OPENBLAS_CORETYPE` always wins; a choice OpenBLAS made
/// deliberately (a known CPU) is kept.
public enum BLASKernels {
    /// Vector instruction levels, as OpenBLAS's kernel families use them.
    public enum Level: Int, Comparable, Sendable, CustomStringConvertible {
        case sse = 0, avx, avx2, avx512

        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }

        public var description: String {
            switch self {
            case .sse: return "SSE"
            case .avx: return "AVX"
            case .avx2: return "AVX2"
            case .avx512: return "AVX-512"
            }
        }

        /// The OpenBLAS core name whose kernels use this level (what `OPENBLAS_CORETYPE` takes).
        var coreName: String? {
            switch self {
            case .sse: return nil
            case .avx: return "Sandybridge"
            case .avx2: return "Haswell"
            case .avx512: return "SkylakeX"
            }
        }
    }

    /// The level of an OpenBLAS core's kernels, from its name (`openblas_get_corename`). Names not
    /// listed (Prescott, Core2, Penryn, Dunnington, Nehalem, Atom, Barcelona, …) are SSE kernels.
    public static func level(ofCore name: String) -> Level {
        switch name.lowercased() {
        case "skylakex", "cooperlake", "sapphirerapids": return .avx512
        case "haswell", "zen", "excavator": return .avx2
        case "sandybridge", "bulldozer", "piledriver", "steamroller": return .avx
        default: return .sse
        }
    }

    /// The core to switch to, or nil to keep OpenBLAS's choice: only when OpenBLAS fell back to SSE
    /// kernels on a CPU with wider vectors and the operator did not name a core.
    public static func replacement(forCore chosen: String, cpu: Level, operatorCore: String?) -> String? {
        if let named = operatorCore, !named.isEmpty { return nil }
        guard level(ofCore: chosen) == .sse, cpu > .sse else { return nil }
        return cpu.coreName
    }

    /// What `selectForThisCPU` did.
    public struct Selection: Sendable, Equatable {
        /// The kernels in use now.
        public var core: String
        /// OpenBLAS's own choice at load.
        public var openBLASChoice: String
        public var cpu: Level

        public var replaced: Bool { core != openBLASChoice }
    }

    /// The kernels in use.
    public static var currentCore: String {
        guard let name = beand_blas_core_name() else { return "unknown" }
        return String(cString: name)
    }

    /// The vector level of this CPU.
    public static var cpuLevel: Level { Level(rawValue: Int(beand_blas_cpu_level())) ?? .sse }

    /// Corrects OpenBLAS's fallback (see the type's comment). Call once, first thing in `main`,
    /// before any thread calls BLAS: the switch briefly leaves OpenBLAS without a kernel table.
    @discardableResult
    public static func selectForThisCPU() -> Selection {
        let chosen = currentCore
        let cpu = cpuLevel
        let named = getenv("OPENBLAS_CORETYPE").map { String(cString: $0) }
        if let core = replacement(forCore: chosen, cpu: cpu, operatorCore: named) {
            _ = beand_blas_select_core(core)
        }
        return Selection(core: currentCore, openBLASChoice: chosen, cpu: cpu)
    }
}
