#ifndef BEAND_CV4L2_SHIM_H
#define BEAND_CV4L2_SHIM_H
// libv4l2 plus the VIDIOC_* request codes, which are function-like macros Swift cannot import.
#include <libv4l2.h>
#include <libv4lconvert.h>
#include <libv4l-plugin.h>
#include <errno.h>
#include <string.h>
#include <linux/videodev2.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <poll.h>

static inline unsigned long beand_VIDIOC_QUERYCAP(void) { return VIDIOC_QUERYCAP; }
static inline unsigned long beand_VIDIOC_ENUM_FMT(void) { return VIDIOC_ENUM_FMT; }
static inline unsigned long beand_VIDIOC_G_FMT(void) { return VIDIOC_G_FMT; }
static inline unsigned long beand_VIDIOC_S_FMT(void) { return VIDIOC_S_FMT; }
static inline unsigned long beand_VIDIOC_G_PARM(void) { return VIDIOC_G_PARM; }
static inline unsigned long beand_VIDIOC_S_PARM(void) { return VIDIOC_S_PARM; }
static inline unsigned long beand_VIDIOC_REQBUFS(void) { return VIDIOC_REQBUFS; }
static inline unsigned long beand_VIDIOC_QUERYBUF(void) { return VIDIOC_QUERYBUF; }
static inline unsigned long beand_VIDIOC_QBUF(void) { return VIDIOC_QBUF; }
static inline unsigned long beand_VIDIOC_DQBUF(void) { return VIDIOC_DQBUF; }
static inline unsigned long beand_VIDIOC_STREAMON(void) { return VIDIOC_STREAMON; }
static inline unsigned long beand_VIDIOC_STREAMOFF(void) { return VIDIOC_STREAMOFF; }
static inline unsigned long beand_VIDIOC_ENUM_FRAMESIZES(void) { return VIDIOC_ENUM_FRAMESIZES; }
static inline unsigned long beand_VIDIOC_G_CTRL(void) { return VIDIOC_G_CTRL; }
static inline unsigned long beand_VIDIOC_S_CTRL(void) { return VIDIOC_S_CTRL; }

/// Pixel format codes are v4l2_fourcc() macros with arguments; Swift sees none of them.
static inline unsigned int beand_V4L2_PIX_FMT_RGB24(void) { return V4L2_PIX_FMT_RGB24; }
static inline unsigned int beand_V4L2_PIX_FMT_YUYV(void) { return V4L2_PIX_FMT_YUYV; }
static inline unsigned int beand_V4L2_PIX_FMT_MJPEG(void) { return V4L2_PIX_FMT_MJPEG; }

/// v4l2_mmap takes an int64 offset; exposed unchanged so the camera needs no Glibc mmap overlay.
static inline void *beand_v4l2_mmap(int fd, size_t length, unsigned int offset) {
    return v4l2_mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (int64_t)offset);
}

/// v4l2_ioctl is variadic in libv4l2.h; Swift cannot call variadic C functions.
static inline int beand_v4l2_ioctl(int fd, unsigned long request, void *arg) {
    return v4l2_ioctl(fd, request, arg);
}
/// v4l2_open is variadic (mode) as well.
static inline int beand_v4l2_open(const char *path, int flags) {
    return v4l2_open(path, flags);
}

/// A libv4lconvert converter not attached to a device: its device operations answer QUERYCAP and
/// offer exactly one source format (passed as the private pointer), so buffers can be converted
/// (and the conversion measured against the native one) without a camera.
static int beand_offline_ioctl(void *priv, int fd, unsigned long request, void *arg) {
    (void)fd;
    if (request == VIDIOC_QUERYCAP) {
        struct v4l2_capability *cap = (struct v4l2_capability *)arg;
        memset(cap, 0, sizeof *cap);
        strcpy((char *)cap->driver, "beand-offline");
        cap->capabilities = cap->device_caps = V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_STREAMING;
        return 0;
    }
    if (request == VIDIOC_ENUM_FMT) {
        struct v4l2_fmtdesc *desc = (struct v4l2_fmtdesc *)arg;
        if (desc->index != 0) { errno = EINVAL; return -1; }
        desc->pixelformat = (unsigned int)(unsigned long)priv;
        return 0;
    }
    errno = ENOTTY;
    return -1;
}

static inline struct v4lconvert_data *beand_v4lconvert_create_offline(unsigned int source_fourcc) {
    static struct libv4l_dev_ops ops = { .ioctl = beand_offline_ioctl };
    return v4lconvert_create_with_dev_ops(-1, (void *)(unsigned long)source_fourcc, &ops);
}
#endif
