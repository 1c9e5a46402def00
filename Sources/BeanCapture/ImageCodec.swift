#if canImport(Glibc)
import Glibc
#endif
import BeanCore
import CJPEG
import CPNG

/// A codec failure, naming the file (or the in-memory image) it concerns.
public struct ImageCodecError: Error, CustomStringConvertible, Equatable {
    public enum Kind: String, Sendable {
        /// The file could not be opened or read.
        case unreadable
        /// Neither a JPEG nor a PNG signature.
        case unknownFormat
        /// The codec library rejected the data.
        case corrupt
        /// The image could not be encoded or written.
        case writeFailed
        /// The frame is not something the codec can encode.
        case unsupportedFrame
    }
    public var kind: Kind
    /// The file path, or a caller-chosen name for in-memory data.
    public var file: String
    public var detail: String

    public init(_ kind: Kind, file: String, detail: String) {
        self.kind = kind
        self.file = file
        self.detail = detail
    }

    public var description: String { "\(file): \(detail)" }
}

/// JPEG (libjpeg-turbo) and PNG (libpng) to and from RGB24 frames.
///
/// Decoding always yields `.rgb24` with a tight stride; grey, palette and 16-bit PNGs and grey
/// JPEGs are converted by the codec libraries. Decoded frames carry the file path as their camera
/// name and sequence 0; sources that replay files set their own.
public enum ImageCodec {
    public enum Format: String, Sendable {
        case jpeg
        case png
    }

    /// The format a file name suggests (`.jpg`, `.jpeg`, `.png`, any case), or `nil`.
    public static func format(forPath path: String) -> Format? {
        let lower = path.lowercased()
        if lower.hasSuffix(".jpg") || lower.hasSuffix(".jpeg") { return .jpeg }
        if lower.hasSuffix(".png") { return .png }
        return nil
    }

    /// The format the data's signature shows, or `nil`.
    public static func format(of data: [UInt8]) -> Format? {
        if data.count >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF { return .jpeg }
        let pngSignature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        if data.count >= 8 && Array(data[0..<8]) == pngSignature { return .png }
        return nil
    }

    /// Reads and decodes a JPEG or PNG file (chosen by content, not by name).
    public static func decode(path: String) throws -> Frame {
        let data = try readFile(path)
        return try decode(data: data, name: path)
    }

    /// Decodes JPEG or PNG bytes; `name` appears in errors and as the frame's camera name.
    public static func decode(data: [UInt8], name: String) throws -> Frame {
        switch format(of: data) {
        case .jpeg: return try decodeJPEG(data, name: name)
        case .png: return try decodePNG(data, name: name)
        case nil:
            let what = data.isEmpty ? "empty file" : "neither JPEG nor PNG (no known signature)"
            throw ImageCodecError(.unknownFormat, file: name, detail: what)
        }
    }

    /// Encodes an RGB24 or gray8 frame as PNG bytes.
    public static func encodePNG(_ frame: Frame, name: String = "<memory>") throws -> [UInt8] {
        try checkEncodable(frame, name: name)
        var image = pngImage(for: frame)
        var size: png_alloc_size_t = 0
        // libpng's row stride counts components (bytes, at 8 bits), not pixels.
        let rowStride = Int32(frame.stride)
        // First call measures, second writes: libpng's simplified API has no growable buffer.
        let measured = frame.pixels.withUnsafeBytes { raw in
            png_image_write_to_memory(&image, nil, &size, 0, raw.baseAddress, rowStride, nil)
        }
        guard measured != 0 else {
            throw ImageCodecError(.writeFailed, file: name, detail: pngMessage(&image))
        }
        var out = [UInt8](repeating: 0, count: Int(size))
        let written = out.withUnsafeMutableBytes { dst in
            frame.pixels.withUnsafeBytes { raw in
                png_image_write_to_memory(&image, dst.baseAddress, &size, 0, raw.baseAddress, rowStride, nil)
            }
        }
        png_image_free(&image)
        guard written != 0 else {
            throw ImageCodecError(.writeFailed, file: name, detail: pngMessage(&image))
        }
        out.removeLast(out.count - Int(size))
        return out
    }

    /// Encodes an RGB24 frame as JPEG bytes at `quality` (1…100).
    public static func encodeJPEG(_ frame: Frame, quality: Int = 90, name: String = "<memory>") throws -> [UInt8] {
        try checkEncodable(frame, name: name)
        guard frame.format == .rgb24 else {
            throw ImageCodecError(.unsupportedFrame, file: name, detail: "JPEG encoding needs rgb24, frame is \(frame.format.rawValue)")
        }
        guard (1...100).contains(quality) else {
            throw ImageCodecError(.unsupportedFrame, file: name, detail: "JPEG quality \(quality) outside 1…100")
        }
        var out: UnsafeMutablePointer<UInt8>? = nil
        var outSize: UInt = 0
        var message = [CChar](repeating: 0, count: 256)
        let rc = frame.pixels.withUnsafeBufferPointer { px in
            beand_jpeg_encode_rgb(px.baseAddress, Int32(frame.width), Int32(frame.height), Int32(frame.stride),
                                  Int32(quality), &out, &outSize, &message, message.count)
        }
        defer { free(out) }
        guard rc == 0, let out else {
            throw ImageCodecError(.writeFailed, file: name, detail: "libjpeg: \(String(cString: message))")
        }
        return Array(UnsafeBufferPointer(start: out, count: Int(outSize)))
    }

    /// Writes a frame to `path` as PNG or JPEG, chosen by the file name (`.png`, `.jpg`, `.jpeg`).
    /// The file is written to a temporary name and renamed, so readers never see half a file.
    public static func write(_ frame: Frame, to path: String, jpegQuality: Int = 90) throws {
        let bytes: [UInt8]
        switch format(forPath: path) {
        case .png: bytes = try encodePNG(frame, name: path)
        case .jpeg: bytes = try encodeJPEG(frame, quality: jpegQuality, name: path)
        case nil:
            throw ImageCodecError(.writeFailed, file: path, detail: "file name must end in .png, .jpg or .jpeg")
        }
        try writeFile(path, bytes)
    }

    // MARK: - JPEG

    private static func decodeJPEG(_ data: [UInt8], name: String) throws -> Frame {
        var out: UnsafeMutablePointer<UInt8>? = nil
        var width: Int32 = 0, height: Int32 = 0, warnings: Int32 = 0
        var message = [CChar](repeating: 0, count: 256)
        let rc = data.withUnsafeBufferPointer { buf in
            beand_jpeg_decode_rgb(buf.baseAddress, UInt(buf.count), &out, &width, &height, &warnings,
                                  &message, message.count)
        }
        defer { free(out) }
        guard rc == 0, let out else {
            throw ImageCodecError(.corrupt, file: name, detail: "corrupt JPEG: \(String(cString: message))")
        }
        // libjpeg pads a truncated file with grey and only warns; an inspection system must not
        // learn from or replay half an image, so any warning is an error.
        guard warnings == 0 else {
            throw ImageCodecError(.corrupt, file: name, detail: "corrupt JPEG: \(String(cString: message))")
        }
        let count = Int(width) * Int(height) * 3
        let pixels = Array(UnsafeBufferPointer(start: out, count: count))
        return Frame(camera: name, sequence: 0, captured: .now(), width: Int(width), height: Int(height),
                     format: .rgb24, pixels: pixels)
    }

    // MARK: - PNG

    private static func decodePNG(_ data: [UInt8], name: String) throws -> Frame {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        let began = data.withUnsafeBytes { raw in
            png_image_begin_read_from_memory(&image, raw.baseAddress, raw.count)
        }
        guard began != 0 else {
            throw ImageCodecError(.corrupt, file: name, detail: "corrupt PNG: \(pngMessage(&image))")
        }
        image.format = UInt32(PNG_FORMAT_RGB)
        let width = Int(image.width), height = Int(image.height)
        // Guard the multiplication: a corrupt header can claim 2^31 × 2^31.
        let (count, overflow) = width.multipliedReportingOverflow(by: height * 3)
        guard !overflow, count > 0, count <= 1 << 31 else {
            png_image_free(&image)
            throw ImageCodecError(.corrupt, file: name, detail: "PNG claims implausible size \(width)x\(height)")
        }
        var pixels = [UInt8](repeating: 0, count: count)
        // Transparent pixels are composited onto black so the result is defined.
        var background = png_color()
        let finished = pixels.withUnsafeMutableBytes { dst in
            data.withUnsafeBytes { _ in
                png_image_finish_read(&image, &background, dst.baseAddress, 0, nil)
            }
        }
        guard finished != 0 else {
            let why = pngMessage(&image)
            png_image_free(&image)
            throw ImageCodecError(.corrupt, file: name, detail: "corrupt PNG: \(why)")
        }
        return Frame(camera: name, sequence: 0, captured: .now(), width: width, height: height,
                     format: .rgb24, pixels: pixels)
    }

    private static func pngImage(for frame: Frame) -> png_image {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(frame.width)
        image.height = UInt32(frame.height)
        image.format = frame.format == .rgb24 ? UInt32(PNG_FORMAT_RGB) : UInt32(PNG_FORMAT_GRAY)
        return image
    }

    private static func pngMessage(_ image: inout png_image) -> String {
        withUnsafeBytes(of: &image.message) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    private static func checkEncodable(_ frame: Frame, name: String) throws {
        guard frame.width > 0, frame.height > 0,
              frame.stride >= frame.width * frame.format.bytesPerPixel,
              frame.pixels.count >= frame.stride * (frame.height - 1) + frame.width * frame.format.bytesPerPixel
        else {
            throw ImageCodecError(.unsupportedFrame, file: name,
                                  detail: "frame \(frame.width)x\(frame.height) stride \(frame.stride) has \(frame.pixels.count) bytes")
        }
    }

    // MARK: - Files

    static func readFile(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw ImageCodecError(.unreadable, file: path, detail: "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw ImageCodecError(.unreadable, file: path, detail: "cannot stat: \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw ImageCodecError(.unreadable, file: path, detail: "not a regular file")
        }
        var bytes = [UInt8](repeating: 0, count: Int(st.st_size))
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeMutableBytes { buf in
                read(fd, buf.baseAddress! + done, buf.count - done)
            }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw ImageCodecError(.unreadable, file: path, detail: n == 0 ? "file shrank while reading" : "read failed: \(String(cString: strerror(errno)))")
            }
            done += n
        }
        return bytes
    }

    static func writeFile(_ path: String, _ bytes: [UInt8]) throws {
        let temporary = path + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw ImageCodecError(.writeFailed, file: path, detail: "cannot create: \(String(cString: strerror(errno)))")
        }
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { buf in Glibc.write(fd, buf.baseAddress! + done, buf.count - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                let why = String(cString: strerror(errno))
                close(fd); unlink(temporary)
                throw ImageCodecError(.writeFailed, file: path, detail: "write failed: \(why)")
            }
            done += n
        }
        guard close(fd) == 0, rename(temporary, path) == 0 else {
            let why = String(cString: strerror(errno))
            unlink(temporary)
            throw ImageCodecError(.writeFailed, file: path, detail: "cannot finish: \(why)")
        }
    }
}
