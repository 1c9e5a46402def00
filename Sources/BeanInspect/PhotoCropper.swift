import BeanCapture
import BeanCore
import BeanVision
import Foundation

/// Turns a still photo of one bean into the crop the encoder sees, exactly as the daemon's vision
/// thread does for a belt frame: segmentation with the given settings, then the oriented, masked
/// crop of the bean. Used by `beanctl enroll`, `beanctl eval` and `beanctl train`, so what is
/// learned and measured is what the daemon will see. Not thread-safe (one per thread): it reuses
/// the segmenter's buffers.
public final class PhotoCropper {
    public let segmenterSettings: SegmenterSettings
    public let cropSettings: CropSettings
    private let segmenter: Segmenter

    public init(segmenter settings: SegmenterSettings, crop: CropSettings = CropSettings()) throws {
        try crop.validate()
        self.segmenterSettings = settings
        self.cropSettings = crop
        self.segmenter = try Segmenter(settings: settings)
    }

    /// The crop of the largest bean in the photo at `path`. A photo in which segmentation finds
    /// no bean throws `PhotoCropError.noBean`; one that is already a crop of the configured size
    /// (e.g. from the daemon's spool) is taken as it is.
    public func crop(path: String, beanID: UInt64 = 0) throws -> PhotoCrop {
        var frame: Frame
        do {
            frame = try ImageCodec.decode(path: path)
        } catch {
            throw PhotoCropError.unreadable(path: path, reason: "\(error)")
        }
        if frame.width == cropSettings.size, frame.height == cropSettings.size, frame.format == .rgb24 {
            let crop = BeanCrop(camera: "photo", frameSequence: 0, captured: frame.captured, beanID: beanID,
                                width: frame.width, height: frame.height, pixels: Self.packedRows(frame))
            return PhotoCrop(crop: crop, beansFound: 1, area: nil)
        }
        segmenter.resetLearnedBackground()
        let beans: [SegmentedBean]
        do {
            beans = try segmenter.segment(frame)
        } catch {
            throw PhotoCropError.unreadable(path: path, reason: "segmentation: \(error)")
        }
        guard let largest = beans.max(by: { $0.area < $1.area }) else { throw PhotoCropError.noBean(path: path) }
        frame.camera = "photo"
        let crop = segmenter.beanCrop(of: largest, in: frame, beanID: beanID, settings: cropSettings)
        return PhotoCrop(crop: crop, beansFound: beans.count, area: largest.area)
    }
}

extension PhotoCropper {
    /// RGB24 rows without the frame's row padding.
    static func packedRows(_ frame: Frame) -> [UInt8] {
        let rowBytes = frame.width * 3
        if frame.stride == rowBytes { return Array(frame.pixels.prefix(rowBytes * frame.height)) }
        var packed = [UInt8]()
        packed.reserveCapacity(rowBytes * frame.height)
        for row in 0..<frame.height {
            packed += frame.pixels[row * frame.stride..<row * frame.stride + rowBytes]
        }
        return packed
    }
}

public struct PhotoCrop: Sendable {
    public var crop: BeanCrop
    /// Beans segmentation found; more than one means the largest was taken.
    public var beansFound: Int
    /// Area of the bean in pixels (nil when the photo already was a crop).
    public var area: Int?
}

public enum PhotoCropError: Error, CustomStringConvertible, Equatable {
    case unreadable(path: String, reason: String)
    case noBean(path: String)
    public var description: String {
        switch self {
        case .unreadable(let path, let reason): return "\(path): \(reason)"
        case .noBean(let path): return "\(path): no bean found (segmentation settings do not fit this photo?)"
        }
    }
}
