import BeanCore
import Foundation
import Testing
@testable import BeanInspect

@Suite struct LabelledTreeTests {
    /// Writes empty "photos" (the tree reader never decodes them) and side files.
    func makeTree(_ files: [String], sideFiles: [String: String] = [:]) throws -> String {
        let root = NSTemporaryDirectory() + "beand-tree-\(UInt64.random(in: 0...UInt64.max))"
        for file in files {
            let path = root + "/" + file
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true)
            FileManager.default.createFile(atPath: path, contents: Data([0]))
        }
        for (name, text) in sideFiles { try text.write(toFile: root + "/" + name, atomically: true, encoding: .utf8) }
        return root
    }

    @Test func mindforgeLayoutGroupsBothSidesOfABean() throws {
        let root = try makeTree([
            "1st/Black/U/000.jpg", "1st/Black/D/000.jpg", "1st/Black/U/001.jpg",
            "2nd/Black/U/000.jpg", "1st/Normal/U/000.jpg", "1st/Normal/D/000.jpg",
            "1st/Black/notes.md", "stray.jpg",
        ], sideFiles: ["1st/Black.txt": "000.png: U-1, D-0, \n001.png: U-0, D-1, \n"])
        defer { try? FileManager.default.removeItem(atPath: root) }
        let tree = try LabelledTree(root: root)
        #expect(tree.beans.map(\.key) == ["1st/Black/000", "1st/Black/001", "1st/Normal/000", "2nd/Black/000"])
        #expect(tree.beans[0].photos.map(\.side) == ["D", "U"])
        #expect(tree.beans[0].usablePhotos.map(\.side) == ["U"], "D of bean 000 is marked 0")
        #expect(tree.beans[1].usablePhotos.isEmpty, "only U of bean 001 exists and it is marked 0")
        #expect(tree.beans[2].usablePhotos.count == 2, "Normal photos are always usable")
        #expect(tree.beans[3].usablePhotos.count == 1, "no 2nd/Black.txt: usable")
        #expect(tree.labels == [Label("Black"), Label("Normal")])
        #expect(tree.ignored == ["1st/Black/notes.md", "stray.jpg"])
    }

    @Test func perLabelLayoutMakesEachPhotoABean() throws {
        let root = try makeTree(["Black/a.png", "Black/b.JPG", "Normal/c.jpeg"])
        defer { try? FileManager.default.removeItem(atPath: root) }
        let tree = try LabelledTree(root: root, layout: try TreeLayout(template: "{label}/{id}"))
        #expect(tree.beans.map(\.key) == ["Black/a", "Black/b", "Normal/c"])
        #expect(tree.photoCount == 3)
    }

    /// A tree reached through a symbolic link (a root that links to the photos' directory) reads
    /// as the directory itself, with the photos' paths spelled through the link.
    @Test func rootThatIsASymbolicLinkIsFollowed() throws {
        let root = try makeTree(["Black/a.png", "Normal/c.jpeg"])
        let link = root + "-link"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: root)
        defer { try? FileManager.default.removeItem(atPath: root); try? FileManager.default.removeItem(atPath: link) }
        let tree = try LabelledTree(root: link, layout: try TreeLayout(template: "{label}/{id}"))
        #expect(tree.beans.map(\.key) == ["Black/a", "Normal/c"])
        #expect(tree.beans.flatMap(\.photos).map(\.path) == [link + "/Black/a.png", link + "/Normal/c.jpeg"])
    }

    @Test func malformedLayoutsAreRefusedWithTheReason() {
        #expect(throws: TreeLayoutError.malformed("{batch}/{id}", "needs exactly one {label}")) {
            try TreeLayout(template: "{batch}/{id}")
        }
        #expect(throws: TreeLayoutError.malformed("{label}/x", "'x' is not a {name} placeholder")) {
            try TreeLayout(template: "{label}/x")
        }
        #expect(throws: TreeLayoutError.malformed("{id}/{label}", "must end in a bean-identity placeholder such as {id}")) {
            try TreeLayout(template: "{id}/{label}")
        }
        #expect(throws: LabelledTreeError.notADirectory("/nonexistent/beand")) {
            try LabelledTree(root: "/nonexistent/beand")
        }
    }

    func syntheticBeans(_ counts: [String: Int]) -> [LabelledBean] {
        counts.sorted { $0.key < $1.key }.flatMap { label, n in
            (0..<n).map { LabelledBean(key: "\(label)/\($0)", label: Label(label), photos: []) }
        }
    }

    @Test func foldsAreDisjointStratifiedAndSeeded() throws {
        let beans = syntheticBeans(["Normal": 103, "Black": 11, "Broken": 47])
        let folds = try BeanFolds(beans: beans, folds: 5, seed: 7)
        var seen = Set<Int>()
        for fold in 0..<5 {
            let test = folds.test(fold: fold)
            #expect(Set(test).isDisjoint(with: seen))
            #expect(Set(test).isDisjoint(with: Set(folds.training(fold: fold))))
            seen.formUnion(test)
            for label in ["Normal", "Black", "Broken"] {
                let inFold = test.filter { beans[$0].label.name == label }.count
                let total = beans.filter { $0.label.name == label }.count
                #expect(abs(Double(inFold) - Double(total) / 5) <= 1, "label \(label) fold \(fold): \(inFold) of \(total)")
            }
        }
        #expect(seen.count == beans.count)
        #expect(try BeanFolds(beans: beans, folds: 5, seed: 7).foldOfBean == folds.foldOfBean)
        #expect(try BeanFolds(beans: beans, folds: 5, seed: 8).foldOfBean != folds.foldOfBean)
        #expect(throws: BeanFoldsError.tooFewFolds(1)) { try BeanFolds(beans: beans, folds: 1) }
    }

    @Test func labelledSubsetIsProportionalAndCoversEveryLabel() throws {
        let beans = syntheticBeans(["Normal": 400, "Black": 5, "Broken": 95])
        let all = Array(beans.indices)
        let subset = BeanFolds.labelledSubset(of: all, beans: beans, count: 50, seed: 1)
        #expect(subset.count == 50)
        #expect(Set(subset).count == 50)
        let counts = Dictionary(grouping: subset, by: { beans[$0].label.name }).mapValues(\.count)
        #expect(counts["Black", default: 0] >= 1)
        #expect(abs(counts["Normal", default: 0] - 40) <= 1)
        #expect(BeanFolds.labelledSubset(of: all, beans: beans, count: 50, seed: 1) == subset)
        #expect(BeanFolds.labelledSubset(of: all, beans: beans, count: 9999, seed: 1) == all)
    }

    @Test func labelledSubsetTakesTheGoodShareAndFillsFromTheOtherPart() throws {
        let beans = syntheticBeans(["Normal": 60, "Black": 30, "Broken": 210, "Sour": 100])
        let all = Array(beans.indices)
        func goodCount(_ subset: [Int], _ good: Set<Label> = [.normal]) -> Int {
            subset.filter { good.contains(beans[$0].label) }.count
        }
        let proportional = BeanFolds.labelledSubset(of: all, beans: beans, count: 100, seed: 3)
        #expect(goodCount(proportional) == 15)
        #expect(BeanFolds.labelledSubset(of: all, beans: beans, count: 100, seed: 3, goodShare: nil) == proportional)

        let half = BeanFolds.labelledSubset(of: all, beans: beans, count: 100, seed: 3, goodShare: 0.5)
        #expect(half.count == 100 && Set(half).count == 100)
        #expect(goodCount(half) == 50)
        // The defect part stays stratified: Broken : Sour : Black ≈ 210 : 100 : 30.
        let defects = Dictionary(grouping: half.filter { beans[$0].label != .normal }, by: { beans[$0].label.name })
            .mapValues(\.count)
        #expect(abs(defects["Broken", default: 0] - 31) <= 1)
        #expect(abs(defects["Black", default: 0] - 4) <= 1)
        #expect(BeanFolds.labelledSubset(of: all, beans: beans, count: 100, seed: 3, goodShare: 0.5) == half)
        #expect(BeanFolds.labelledSubset(of: all, beans: beans, count: 100, seed: 4, goodShare: 0.5) != half)

        // Too few good beans: all 60 of them, the rest from the others; and the other way round.
        let most = BeanFolds.labelledSubset(of: all, beans: beans, count: 100, seed: 3, goodShare: 0.9)
        #expect(most.count == 100 && goodCount(most) == 60)
        let fewDefects = Array(all.filter { beans[$0].label == .normal } + all.filter { beans[$0].label != .normal }.prefix(10))
        let filled = BeanFolds.labelledSubset(of: fewDefects, beans: beans, count: 50, seed: 3, goodShare: 0.2)
        #expect(filled.count == 50 && goodCount(filled) == 40)
        #expect(goodCount(BeanFolds.labelledSubset(of: all, beans: beans, count: 100, seed: 3, goodShare: 0)) == 0)

        // Good labels other than Normal.
        let sourGood = BeanFolds.labelledSubset(of: all, beans: beans, count: 100, seed: 3, goodShare: 0.5,
                                                goodLabels: [Label("Sour")])
        #expect(goodCount(sourGood, [Label("Sour")]) == 50)
    }
}

/// The real Mindforge tree beside the project (skipped when absent): bean counts as its README
/// states them, and photos crop to the encoder's input.
@Suite struct MindforgeTreeTests {
    static let root: String? = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        let path = url.deletingLastPathComponent().appendingPathComponent("shared/data/mindforge").path
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }()

    @Test(.enabled(if: root != nil, "../shared/data/mindforge is absent"))
    func beanCountsMatchTheDatasetReadme() throws {
        let tree = try LabelledTree(root: try #require(Self.root))
        let counts = Dictionary(grouping: tree.beans, by: \.label.name).mapValues(\.count)
        #expect(counts == ["Normal": 714, "Inspect-damaged": 568, "Immature": 421, "Fissure": 396, "Broken": 481,
                           "Shell": 343, "Fungus-damaged": 320, "Over-dried": 300, "Sour": 157, "Black": 94,
                           "Floater": 32, "Foreign matter": 2])
        #expect(tree.ignored.isEmpty, "\(tree.ignored.prefix(5))")
        #expect(tree.beans.allSatisfy { (1...2).contains($0.photos.count) })
    }

    @Test(.enabled(if: root != nil, "../shared/data/mindforge is absent"))
    func photosCropToOneBeanEach() throws {
        let tree = try LabelledTree(root: try #require(Self.root))
        let cropper = try PhotoCropper(segmenter: .mindforge)
        // Every 97th photo: a spread over batches and classes.
        let photos = tree.beans.flatMap(\.photos).enumerated().filter { $0.offset % 97 == 0 }.map(\.element)
        var found = 0
        for photo in photos {
            let crop = try cropper.crop(path: photo.path)
            #expect(crop.crop.width == 64 && crop.crop.pixels.count == 64 * 64 * 3)
            if crop.beansFound == 1 { found += 1 }
        }
        #expect(Double(found) >= 0.95 * Double(photos.count), "\(found) of \(photos.count) photos with exactly one bean")
    }
}
