// swift-tools-version:6.1
// beand: line-side green-coffee-bean inspection daemon. Module layout follows ../shared/design.md;
// dependencies point up the design's table only (BeanCore at the top, executables at the bottom).
import PackageDescription

let package = Package(
    name: "beand",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "beand", targets: ["beand"]),
        .executable(name: "beanctl", targets: ["beanctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.3.0"),
        .package(url: "https://github.com/LebJe/TOMLKit.git", from: "0.6.0"),
    ],
    targets: [
        // System libraries. Headers hold static-inline shims only where Swift cannot import a
        // macro (VIDIOC_*) or a variadic function.
        .systemLibrary(name: "CV4L2", pkgConfig: "libv4l2", providers: [.apt(["libv4l-dev"])]),
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        .systemLibrary(name: "CJPEG", pkgConfig: "libjpeg", providers: [.apt(["libjpeg62-turbo-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),

        .systemLibrary(name: "CThread"),
        .target(name: "BeanCore", dependencies: ["CThread"]),
        .target(name: "BeanCapture", dependencies: ["BeanCore", "CV4L2", "CJPEG", "CPNG"]),
        .systemLibrary(name: "CVision"),
        .target(name: "BeanVision", dependencies: ["BeanCore", "CVision"]),
        .target(name: "BeanNet", dependencies: [
            "BeanCore", "CBLAS",
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ]),
        .target(name: "BeanStore", dependencies: ["BeanCore", "CBLAS"]),
        .target(name: "BeanInspect", dependencies: ["BeanCore", "BeanCapture", "BeanVision", "BeanNet", "BeanStore"]),
        .target(name: "BeanService", dependencies: [
            "BeanCore", "BeanCapture", "BeanVision", "BeanNet", "BeanStore", "BeanInspect", "CSystemd",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Atomics", package: "swift-atomics"),
            .product(name: "TOMLKit", package: "TOMLKit"),
        ]),
        .executableTarget(name: "beand", dependencies: [
            "BeanService",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "beanctl", dependencies: [
            "CThread", "BeanCore", "BeanCapture", "BeanVision", "BeanNet", "BeanStore", "BeanService",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // Test-only: the capture probe the real-V4L2 harness (Tests/v4l2) boots in QEMU.
        .executableTarget(name: "v4l2-probe", dependencies: ["BeanCore", "BeanCapture"]),

        .testTarget(name: "BeanCoreTests", dependencies: ["BeanCore"]),
        .testTarget(name: "BeanCaptureTests", dependencies: ["BeanCapture"]),
        .testTarget(name: "BeanVisionTests", dependencies: ["BeanVision", "BeanCapture"]),
        .testTarget(name: "BeanNetTests", dependencies: ["BeanNet"]),
        .testTarget(name: "BeanStoreTests", dependencies: ["BeanStore"]),
        .testTarget(name: "BeanInspectTests", dependencies: ["BeanInspect"]),
        .testTarget(name: "BeanServiceTests", dependencies: ["BeanService"]),
    ],
    swiftLanguageModes: [.v5]
)
