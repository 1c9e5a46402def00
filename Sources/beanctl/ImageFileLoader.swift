// Private JPEG/PNG reading and PNG writing for `beanctl segment`, over libjpeg-turbo and libpng.
// Stand-in until the capture module's codec is merged: keep everything file-related in this one
// file so the swap is one file.
import BeanCore
import CJPEG
import CPNG
import Foundation

struct ImageFileError: Error, CustomStringConvertible {
    var path: String
    var reason: String
    var description: String { "\(path): \(reason)" }
}

/// libjpeg reports fatal errors through a callback that must not return; a CLI can only stop there.
/// The path is kept here so the message names the file.
nonisolated(unsafe) private var jpegPathForErrors = ""

private func jpegErrorExit(_ info: j_common_ptr?) {
    var buffer = [CChar](repeating: 0, count: Int(JMSG_LENGTH_MAX))
    if let info, let err = info.pointee.err {
        err.pointee.format_message(info, &buffer)
    }
    let message = String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    FileHandle.standardError.write(Data("beanctl: \(jpegPathForErrors): corrupt JPEG: \(message)\n".utf8))
    exit(65)
}

enum ImageFileLoader {
    /// Reads a JPEG or PNG file (told apart by content, not by name) as an RGB24 frame.
    static func load(path: String, sequence: UInt64 = 0) throws -> Frame {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ImageFileError(path: path, reason: "cannot read file")
        }
        let bytes = [UInt8](data)
        if bytes.count >= 3, bytes[0] == 0xFF, bytes[1] == 0xD8, bytes[2] == 0xFF {
            return try decodeJPEG(bytes, path: path, sequence: sequence)
        }
        if bytes.count >= 8, bytes[0..<8].elementsEqual([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) {
            return try decodePNG(bytes, path: path, sequence: sequence)
        }
        throw ImageFileError(path: path, reason: "not a JPEG or PNG file (\(bytes.count) bytes, unknown signature)")
    }

    private static func decodeJPEG(_ bytes: [UInt8], path: String, sequence: UInt64) throws -> Frame {
        jpegPathForErrors = path
        var info = jpeg_decompress_struct()
        var errors = jpeg_error_mgr()
        info.err = jpeg_std_error(&errors)
        errors.error_exit = jpegErrorExit
        errors.output_message = { _ in }  // warnings (e.g. truncated data) are not fatal
        jpeg_CreateDecompress(&info, JPEG_LIB_VERSION, MemoryLayout<jpeg_decompress_struct>.size)
        defer { jpeg_destroy_decompress(&info) }
        var pixels: [UInt8] = []
        bytes.withUnsafeBufferPointer { buffer in
            jpeg_mem_src(&info, buffer.baseAddress, UInt(buffer.count))
            _ = jpeg_read_header(&info, 1)
            info.out_color_space = JCS_RGB
            _ = jpeg_start_decompress(&info)
            let width = Int(info.output_width), height = Int(info.output_height)
            pixels = [UInt8](repeating: 0, count: width * height * 3)
            pixels.withUnsafeMutableBufferPointer { out in
                guard let base = out.baseAddress else { return }
                while info.output_scanline < info.output_height {
                    var row: UnsafeMutablePointer<UInt8>? = base + Int(info.output_scanline) * width * 3
                    _ = jpeg_read_scanlines(&info, &row, 1)
                }
            }
            _ = jpeg_finish_decompress(&info)
        }
        let width = Int(info.output_width), height = Int(info.output_height)
        guard width > 0, height > 0 else { throw ImageFileError(path: path, reason: "JPEG has no pixels") }
        return Frame(camera: path, sequence: sequence, captured: .now(), width: width, height: height,
                     format: .rgb24, pixels: pixels)
    }

    private static func decodePNG(_ bytes: [UInt8], path: String, sequence: UInt64) throws -> Frame {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        func failure() -> ImageFileError {
            let message = withUnsafeBytes(of: image.message) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            png_image_free(&image)
            return ImageFileError(path: path, reason: "corrupt PNG: \(message)")
        }
        let begun = bytes.withUnsafeBufferPointer { png_image_begin_read_from_memory(&image, $0.baseAddress, $0.count) }
        guard begun != 0 else { throw failure() }
        image.format = UInt32(PNG_FORMAT_RGB)
        let width = Int(image.width), height = Int(image.height)
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        let finished = pixels.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, Int32(width * 3), nil) }
        guard finished != 0 else { throw failure() }
        return Frame(camera: path, sequence: sequence, captured: .now(), width: width, height: height,
                     format: .rgb24, pixels: pixels)
    }

    /// Writes RGB24 pixels as a PNG file.
    static func writePNG(path: String, width: Int, height: Int, rgb: [UInt8]) throws {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(width)
        image.height = UInt32(height)
        image.format = UInt32(PNG_FORMAT_RGB)
        let ok = rgb.withUnsafeBytes { png_image_write_to_file(&image, path, 0, $0.baseAddress, Int32(width * 3), nil) }
        if ok == 0 {
            let message = withUnsafeBytes(of: image.message) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            png_image_free(&image)
            throw ImageFileError(path: path, reason: "cannot write PNG: \(message)")
        }
    }
}
