#if canImport(Glibc)
import Glibc
#endif

/// Read-only commands anyone who can connect may use; changing commands need uid 0 or the admin
/// group.
public enum ControlAccess: Sendable {
    case readOnly
    case changing
}

/// One control command. `run` may complete on any thread; the connection writes the response in
/// request order.
public struct ControlCommand: Sendable {
    public typealias Completion = @Sendable (Result<JSONValue, ControlFailure>) -> Void

    public var name: String
    public var access: ControlAccess
    /// Argument names the command accepts; any other member of the request is an error.
    public var arguments: Set<String>
    public var run: @Sendable (ControlRequest, @escaping Completion) -> Void

    public init(name: String, access: ControlAccess, arguments: Set<String> = [],
                run: @escaping @Sendable (ControlRequest, @escaping Completion) -> Void) {
        self.name = name
        self.access = access
        self.arguments = arguments
        self.run = run
    }
}

/// The commands the control socket serves. Built before the server starts and not changed after,
/// so lookups need no lock.
public struct ControlCommandTable: Sendable {
    private var commands: [String: ControlCommand] = [:]

    public init(_ commands: [ControlCommand] = []) {
        for command in commands { register(command) }
    }

    public mutating func register(_ command: ControlCommand) { commands[command.name] = command }

    public var names: [String] { commands.keys.sorted() }

    /// Finds the command and checks the request's arguments against it.
    public func resolve(_ request: ControlRequest) -> Result<ControlCommand, ControlFailure> {
        guard let command = commands[request.command] else {
            let shown = JSONValue.string(request.command).serialized
            return .failure(ControlFailure("unknown command \(shown) (known: \(names.joined(separator: ", ")))"))
        }
        if let unknown = request.arguments.first(where: { !command.arguments.contains($0.0) }) {
            let shown = JSONValue.string(unknown.0).serialized
            return .failure(ControlFailure("unknown argument \(shown) for command \(command.name)"))
        }
        return .success(command)
    }
}

/// Who is on the other end of a control connection, from `SO_PEERCRED` (taken by the kernel at
/// connect time; the peer cannot forge it).
public struct PeerCredentials: Equatable, Sendable {
    public var pid: Int32
    public var uid: UInt32
    public var gid: UInt32

    public init(pid: Int32, uid: UInt32, gid: UInt32) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
    }
}

/// Who may use changing commands: uid 0, or a peer whose primary group (from `SO_PEERCRED`) or whose
/// user's supplementary groups (from the group database, `getgrouplist`) include the admin group.
public struct AdminPolicy: Sendable {
    public var adminGroupID: UInt32

    public init(adminGroupID: UInt32) { self.adminGroupID = adminGroupID }

    /// Consults the user and group databases (NSS): call it off the event loop or once per connection.
    public func allows(_ peer: PeerCredentials) -> Bool {
        if peer.uid == 0 || peer.gid == adminGroupID { return true }
        guard let user = UserDatabase.name(of: peer.uid) else { return false }
        return UserDatabase.groups(ofUser: user.name, primary: user.gid).contains(adminGroupID)
    }
}

/// Thin, thread-safe wrappers over the `_r` NSS calls.
public enum UserDatabase {
    public static func groupID(named name: String) -> UInt32? {
        var group = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 16_384)
        let status = getgrnam_r(name, &group, &buffer, buffer.count, &result)
        guard status == 0, result != nil else { return nil }
        return group.gr_gid
    }

    public static func name(of uid: UInt32) -> (name: String, gid: UInt32)? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16_384)
        let status = getpwuid_r(uid, &entry, &buffer, buffer.count, &result)
        guard status == 0, result != nil, let name = entry.pw_name else { return nil }
        return (String(cString: name), entry.pw_gid)
    }

    public static func groups(ofUser user: String, primary: UInt32) -> [UInt32] {
        var count: Int32 = 64
        while true {
            var groups = [gid_t](repeating: 0, count: Int(count))
            var requested = count
            if getgrouplist(user, primary, &groups, &requested) >= 0 {
                return Array(groups.prefix(Int(requested)))
            }
            guard requested > count, requested < 65_536 else { return [] }
            count = requested
        }
    }
}
