import CV4L2

/// libv4lconvert's YUYV→RGB24 on plain buffers (no device), the peer the native `YUYVConverter`
/// is measured against in `beanctl bench capture`. The camera itself lets libv4l2 call
/// libv4lconvert when it asks for an emulated format; this wrapper exists for comparison.
public final class LibV4LConverter {
    private let handle: OpaquePointer
    public let width: Int
    public let height: Int

    public init?(width: Int, height: Int) {
        guard let handle = beand_v4lconvert_create_offline(beand_V4L2_PIX_FMT_YUYV()) else { return nil }
        self.handle = handle
        self.width = width
        self.height = height
    }

    deinit { v4lconvert_destroy(handle) }

    /// Converts one tightly packed YUYV frame into RGB24; returns false (with libv4lconvert's
    /// message in `lastError`) on failure.
    public func convert(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) -> Bool {
        var src = v4l2_format(), dst = v4l2_format()
        src.type = V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue
        dst.type = src.type
        src.fmt.pix.width = UInt32(width); src.fmt.pix.height = UInt32(height)
        dst.fmt.pix.width = UInt32(width); dst.fmt.pix.height = UInt32(height)
        src.fmt.pix.pixelformat = beand_V4L2_PIX_FMT_YUYV()
        src.fmt.pix.bytesperline = UInt32(width * 2)
        src.fmt.pix.sizeimage = UInt32(width * height * 2)
        dst.fmt.pix.pixelformat = beand_V4L2_PIX_FMT_RGB24()
        dst.fmt.pix.bytesperline = UInt32(width * 3)
        dst.fmt.pix.sizeimage = UInt32(width * height * 3)
        let rc = v4lconvert_convert(handle, &src, &dst,
                                    UnsafeMutablePointer(mutating: source.baseAddress?.assumingMemoryBound(to: UInt8.self)), Int32(source.count),
                                    destination.baseAddress?.assumingMemoryBound(to: UInt8.self), Int32(destination.count))
        return rc == Int32(width * height * 3)
    }

    public var lastError: String { String(cString: v4lconvert_get_error_message(handle)) }
}
