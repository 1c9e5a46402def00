// BeanStore: see ../shared/design.md for what this module owns.
