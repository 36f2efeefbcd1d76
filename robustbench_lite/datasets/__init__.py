"""The built-in dataset plugins, one per module, registered through entry points exactly as a
third party's are; `_common` holds their file formats (IDX, the CIFAR binary archives, foolbox's
sample images) and the one way a data file is found, downloaded and verified."""
